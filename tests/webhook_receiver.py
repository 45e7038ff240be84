"""A webhook receiver on 127.0.0.1 for the tests: it records each post and answers as told (or never)."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The Standard Webhooks secret the tests sign with and receivers verify with.
SECRET = "whsec_" + base64.b64encode(b"a test secret of 32 bytes, quite").decode()
HANG = "hang"  # an answer that never comes (until the receiver is closed)


class Receiver:
    """A threading http.server: `answers` are the statuses of the next posts (then 200), HANG for none."""

    def __init__(self, answers=()):
        self.answers = list(answers)
        self.posts: list[tuple[dict[str, str], str]] = []  # (headers, body) of each post, in arrival order
        self.closing = threading.Event()
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name; the checker may probe the receiver as its main site
                self._answer(200, b"ok\n")

            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode("utf-8")
                with receiver.arrived:
                    receiver.posts.append(({name.lower(): value for name, value in self.headers.items()}, body))
                    answer = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.arrived.notify_all()
                if answer == HANG:
                    receiver.closing.wait(60)
                    return
                text = {200: b"thanks\n", 410: b"this hook was deleted\n"}.get(answer, b"oops, try later\n")
                self._answer(answer, text)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[dict[str, str], str]]:
        """The posts once `count` have arrived (or what came within `timeout`)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.posts) >= count, timeout)
            return list(self.posts)
