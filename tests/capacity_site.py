"""A stand-in main site with a fixed capacity: N requests at once are fine, more make it slow, then fail.

    with CapacitySite(capacity=4, work=0.1) as site:
        ...                      # send traffic at site.url, through a proxy
        site.peak                # the most requests it ever held at once
        site.overloaded          # how many requests arrived while it already held `capacity`
        site.timeline            # (time.monotonic(), requests held) at each change, for bench/admission.py's plot

Each request takes `work` seconds. A request that arrives while the site already holds `capacity` is
answered only after `overload_delay` seconds, with a 503: a site past its capacity gets slow for everyone,
then fails, which is what the proxy recipes' overflow is there to prevent. Health checks (HAProxy's, and
fallback's probes: told by their User-Agent) are answered at once and not counted: they do not pass through
the proxy's count, and a real site answers them from a cheap endpoint. Listens on 127.0.0.1 only.

Run as a script (`python tests/capacity_site.py CAPACITY WORK OVERLOAD_DELAY [count-probes]`), as
bench/admission.py does so that its threads do not share an interpreter with the visitors': it prints its URL,
then answers each line "collect" on its input with one line of JSON (peak, served, overloaded, timeline) and
starts counting again; it stops at the end of its input. With count-probes, probes queue like any request.
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
import time

from procs import free_port

HEALTH_CHECKS = ("haproxy-check", "fallback-healthcheck")
BODY = b"<!doctype html><title>Main site</title><h1>Welcome to the main site</h1>\n"


class CapacitySite:
    """The capacity-limited main site, served from threads; counts what it held."""

    def __init__(self, capacity: int, work: float = 0.1, overload_delay: float = 2.0, count_probes: bool = False):
        self.capacity, self.work, self.overload_delay = capacity, work, overload_delay
        # With count_probes, health checks queue like any request: a checker then sees the site slow down.
        self.count_probes = count_probes
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.holding = 0
        self.peak = 0
        self.served = 0
        self.overloaded = 0
        self.timeline: list[tuple[float, int]] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    def reset(self) -> None:
        """Forget the counts (not the requests being held)."""
        with self.lock:
            self.peak, self.served, self.overloaded = self.holding, 0, 0
            self.timeline = [(time.monotonic(), self.holding)]

    def _enter(self) -> bool:
        with self.lock:
            over = self.holding >= self.capacity
            self.holding += 1
            self.peak = max(self.peak, self.holding)
            self.overloaded += over
            self.timeline.append((time.monotonic(), self.holding))
            return over

    def _leave(self) -> None:
        with self.lock:
            self.holding -= 1
            self.served += 1
            self.timeline.append((time.monotonic(), self.holding))

    def __enter__(self) -> CapacitySite:
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10

            def log_message(self, format, *args):  # noqa: A002 - the base class's name
                pass

            def do_GET(self):  # noqa: N802 - the base class's name
                agent = self.headers.get("User-Agent", "")
                if not site.count_probes and any(check in agent for check in HEALTH_CHECKS):
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(BODY)))
                    self.end_headers()
                    self.wfile.write(BODY)
                    return
                over = site._enter()
                try:
                    time.sleep(site.overload_delay if over else site.work)
                finally:
                    # The work is done before the answer leaves: a proxy frees the request's place only once it
                    # has the answer, so its next request can never be counted here alongside this one (counting
                    # until after the write let a busy machine's scheduler show one request too many).
                    site._leave()
                status, body = (503, b"overloaded\n") if over else (200, BODY)
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 256

            def handle_error(self, request, client_address):
                # A client that gave up (a probe's time-out, a visitor's) is part of an overload, not a fault.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="capacity site").start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def serve_counts(capacity: int, work: float, overload_delay: float, count_probes: bool) -> None:
    """The script: the URL, then the counts for each "collect" read on standard input, until its end."""
    with CapacitySite(capacity, work, overload_delay, count_probes) as site:
        print(site.url, flush=True)
        for line in sys.stdin:
            if line.strip() != "collect":
                break
            with site.lock:
                counts = {"peak": site.peak, "served": site.served, "overloaded": site.overloaded}
                counts["timeline"] = list(site.timeline)
            site.reset()
            print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    serve_counts(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:] == ["count-probes"])
