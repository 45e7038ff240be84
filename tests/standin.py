"""A stand-in "main site" for tests: a tiny HTTP server on 127.0.0.1 whose behaviour is switched at run time.

    with StandIn() as site:
        site.behaviour = "error"        # the site now answers 503
        ...
        site.stop()                     # connections are now refused
        site.start()                    # the same port answers again

Every behaviour is bounded in time and stops as soon as the stand-in is stopped or closed, so no
thread is left blocking after a test. It listens on 127.0.0.1 only and never connects anywhere.

A request to `/as/<behaviour>` gets that behaviour whatever `site.behaviour` says, so one stand-in can
serve a redirect to an ok page (`site.behaviour = "redirect"` sends 302 to `/as/ok`).
"""

from __future__ import annotations

import contextlib
import errno
import http.server
import socket
import threading
import time

HOST = "127.0.0.1"
KEYWORD = "Welcome"
OK_BODY = f"<!doctype html><title>Main site</title><h1>{KEYWORD} to the main site</h1>\n".encode()

BEHAVIOURS = (
    "ok",  # 200 with a body containing "Welcome"
    "error",  # 503
    "hang",  # read the request, never answer (up to HANG_SECONDS)
    "trickle",  # 200 and headers, then one body byte every `trickle_interval` s (up to TRICKLE_SECONDS)
    "slow",  # "ok" after `delay` seconds
    "nokeyword",  # 200 without "Welcome"
    "redirect",  # 302 to /as/ok
    "redirect_loop",  # 302 to itself, forever
    "huge_headers",  # 200 then a very large header block, one 1 KB header line every `header_interval` s
    "long_header",  # 200 then a single header line over 100 KB
    "endless",  # 200 with an endless, fast body and no Content-Length
    "truncated",  # 200 promising 1000 body bytes, sending 10, then closing the connection
)

HANG_SECONDS = 30.0
TRICKLE_SECONDS = 60.0
ENDLESS_SECONDS = 30.0
HUGE_HEADER_SECONDS = 30.0
IO_TIMEOUT = 5.0  # every socket read or write of the stand-in gives up after this
JOIN_SECONDS = 3.0  # how long close() waits, in all, for the handler threads to finish
BIND_SECONDS = 3.0  # how long start() retries binding a port that is briefly still in use


class _Server(http.server.ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its open connections and handler threads, to end them on stop."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, port: int, site: StandIn):
        self.site = site
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.threads: set[threading.Thread] = set()
        self.track = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def process_request(self, request, client_address):
        thread = threading.Thread(
            target=self._handle,
            args=(request, client_address),
            daemon=True,
            name=f"standin {self.server_address[1]} handler",
        )
        with self.track:
            self.connections.add(request)
            self.threads.add(thread)
        thread.start()

    def _handle(self, request, client_address):
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.track:
                self.connections.discard(request)
                self.threads.discard(threading.current_thread())

    def handle_error(self, request, client_address):
        """Clients hanging up on a hanging or endless answer is the point of most tests: stay quiet."""

    def cut_connections(self) -> None:
        """Shut every open connection down, which also wakes any handler blocked on its socket."""
        with self.track:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IO_TIMEOUT
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):  # noqa: N802 - the base class's name
        site = self.server.site
        site._record(self)
        behaviour = site.behaviour
        if site.fail_one_in and site.hits % site.fail_one_in == 0:
            behaviour = "error"  # every n-th request fails: a flaky, not a broken, site
        if self.path.startswith("/as/"):
            behaviour = self.path[len("/as/") :].split("?")[0].strip("/")
        try:
            getattr(self, f"_{behaviour}")()
        except (OSError, ValueError):
            # The client hung up, or the stand-in was stopped under us.
            self.close_connection = True

    do_HEAD = do_GET  # noqa: N815

    # The behaviours.

    def _ok(self, body: bytes = OK_BODY, status: int = 200):
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self):
        self.send_response(503)
        self.send_header("Retry-After", "60")
        body = b"<!doctype html><title>Down</title><h1>Service unavailable</h1>\n"
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _nokeyword(self):
        self._ok(b"<!doctype html><title>Parked</title><h1>This domain is parked</h1>\n")

    def _slow(self):
        if self._pause(self.server.site.delay):
            self._ok()

    def _hang(self):
        self._pause(HANG_SECONDS)
        self.close_connection = True

    def _trickle(self):
        site = self.server.site
        length = max(1, int(TRICKLE_SECONDS / site.trickle_interval))
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.flush()
        for _ in range(length):
            if not self._pause(site.trickle_interval):
                break
            self.wfile.write(KEYWORD[:1].encode())
            self.wfile.flush()
        self.close_connection = True

    def _redirect(self):
        self._send_redirect("/as/ok")

    def _redirect_loop(self):
        self._send_redirect(self.path)

    def _send_redirect(self, location: str):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _huge_headers(self):
        site = self.server.site
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self._flush_headers()
        line = b"X-Padding-%d: " + b"p" * 1000 + b"\r\n"
        until = time.monotonic() + HUGE_HEADER_SECONDS
        number = 0
        while time.monotonic() < until and self._pause(site.header_interval):
            number += 1
            self.wfile.write(line % number)
            self.wfile.flush()
        self.close_connection = True

    def _long_header(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self._flush_headers()
        self.wfile.write(b"X-Padding: ")
        piece = b"p" * 16384
        for _ in range(8):  # 128 KB, in pieces, so the line arrives the way a real one would
            self.wfile.write(piece)
            self.wfile.flush()
        self.wfile.write(b"\r\n\r\n")
        self.close_connection = True

    def _endless(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(OK_BODY)
        piece = b"<p>" + b"and more " * 1000 + b"</p>\n"
        until = time.monotonic() + ENDLESS_SECONDS
        while time.monotonic() < until and not self.server.stopping.is_set():
            self.wfile.write(piece)
        self.close_connection = True

    def _truncated(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(OK_BODY[:10])
        self.wfile.flush()
        self.close_connection = True

    # Helpers.

    def _flush_headers(self):
        """Send what send_response and send_header buffered, without ending the header block."""
        self.wfile.write(b"".join(self._headers_buffer))
        self._headers_buffer = []
        self.wfile.flush()

    def _pause(self, seconds: float) -> bool:
        """Wait `seconds`; False if the stand-in is being stopped meanwhile."""
        return not self.server.stopping.wait(seconds)


class StandIn:
    """A switchable stand-in main site on 127.0.0.1, on a free port that stays the same across stop/start."""

    def __init__(
        self, behaviour: str = "ok", delay: float = 1.5, trickle_interval: float = 0.5, header_interval: float = 0.2
    ):
        self.behaviour = behaviour
        self.fail_one_in = 0
        self.delay = delay
        self.trickle_interval = trickle_interval
        self.header_interval = header_interval
        self.port: int | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._hits = 0
        self._last_headers = None
        self.paths: list[str] = []
        self.leftover_threads: list[threading.Thread] = []

    def __setattr__(self, name, value):
        if name == "behaviour" and value not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {value!r}; one of {', '.join(BEHAVIOURS)}")
        super().__setattr__(name, value)

    # What tests read.

    @property
    def url(self) -> str:
        """The root URL of the stand-in, e.g. http://127.0.0.1:54321/."""
        return self.url_for("/")

    def url_for(self, path: str) -> str:
        if self.port is None:
            raise RuntimeError("the stand-in has never been started, so it has no port yet")
        return f"http://{HOST}:{self.port}{path}"

    @property
    def hits(self) -> int:
        """How many requests the stand-in has received (every behaviour, every path)."""
        with self._lock:
            return self._hits

    @property
    def last_headers(self):
        """The headers of the last request received (case-insensitive look-ups), or None."""
        with self._lock:
            return self._last_headers

    @property
    def running(self) -> bool:
        return self._server is not None

    def wait_for_hits(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least `count` requests arrived; False if `timeout` passes first."""
        until = time.monotonic() + timeout
        while self.hits < count:
            if time.monotonic() >= until:
                return False
            time.sleep(0.01)
        return True

    def _record(self, handler: _Handler) -> None:
        with self._lock:
            self._hits += 1
            self._last_headers = handler.headers
            self.paths.append(handler.path)

    # Life cycle.

    def start(self) -> StandIn:
        """Listen (again): on a free port the first time, on the same port after stop()."""
        if self._server is not None:
            return self
        server = self._bind()
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name=f"standin {self.port}"
        )
        self._thread.start()
        return self

    def _bind(self) -> _Server:
        if self.port is None:
            return _Server(0, self)
        until = time.monotonic() + BIND_SECONDS
        while True:
            try:
                return _Server(self.port, self)
            except OSError as error:
                if error.errno != errno.EADDRINUSE or time.monotonic() >= until:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """Close the listening socket and every open connection: connections are refused until start()."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.cut_connections()
        thread.join(JOIN_SECONDS)
        until = time.monotonic() + JOIN_SECONDS
        with server.track:
            threads = list(server.threads)
        for handler_thread in threads:
            handler_thread.join(max(0.0, until - time.monotonic()))
        self.leftover_threads = [t for t in threads + [thread] if t.is_alive()]

    close = stop

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


@contextlib.contextmanager
def standin(**settings):
    """`with standin(behaviour="error") as site:` - the same as `with StandIn(...) as site:`."""
    with StandIn(**settings) as site:
        yield site
