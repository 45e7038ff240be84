"""Load and soak: mixed page views and submissions against a real `fallback serve`, on loopback only.

    python bench/load.py                          # 60 s, 8 clients, 2 workers
    python bench/load.py --duration 600 --clients 16 --json
    python bench/load.py --slow-sockets 150 --duration 20   # the attack row (see run_attack)

Starts `fallback serve` on a free 127.0.0.1 port, in a temporary folder with its own SQLite
database, the page forced on (`fallback mode down`), the time trap and the rate limit off, an
export token set, and the health checker probing a tiny site this script runs on 127.0.0.1 (so
nothing is ever probed off the machine; inherited FALLBACK_* and proxy variables are dropped).

Client threads (one keep-alive `requests.Session` each) then loop until the deadline: a few page
views on visitor paths (GET, Accept: text/html, English or French), then a form submission built
from the last page (its hidden `token` and `path`, a distinct e-mail address, consent ticked).
At the end it reports requests per second, answers by status, any 5xx other than the page's
designed 503, submissions acknowledged (303) against leads present in the CSV export
(`GET /_fallback/admin/export.csv` with the bearer token), and each gunicorn worker's resident
memory (VmRSS from /proc) at the start, at its peak and at the end.

Exit status: 0 when nothing failed; 1 on any 5xx, any acknowledged lead missing from the
export, any rejected submission, any connection error, or a worker restarted; 2 when the run
itself could not be done. Everything it starts is stopped at the end, on error too.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import html
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

# The process helpers live in tests/procs.py, shared with the tests (see its docstring); tests/ goes last
# on the path, so that none of its modules can shadow one the bench imports.
TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if TESTS not in sys.path:
    sys.path.append(TESTS)

from procs import (  # noqa: E402 - after the path
    answers,
    fallback_command,
    free_port,
    log_tail,
    spawn_group,
    stop_group,
    wait_ready,
)

HOST = "127.0.0.1"
EXPORT_TOKEN = "load-test-export-token-0123456789"
# The admin area and the API are on, so that every route that takes a body is there for the slow bodies.
API_TOKEN = "load-test-api-token-0123456789"
TOKEN = re.compile(r'name="token" value="([^"]+)"')
LANDING = re.compile(r'name="path" value="([^"]*)"')
VIEWS_PER_SUBMISSION = 4
# Visitor paths as a TV spike brings them: the home page, campaign links, a non-ASCII path.
VISITOR_PATHS = ("/", "/campaign/tv?utm_source=tv&utm_medium=spot", "/produits/chaussures-été", "/blog/2026/11/launch")
LANGUAGES = ("en-GB,en;q=0.9", "fr-FR,fr;q=0.9,en;q=0.5", "de-DE,de;q=0.9")
REQUEST_TIMEOUT = 10.0
POST_TIMEOUT = 30.0
STARTUP_SECONDS = 30.0
# Variables never passed on to the server: its settings are ours alone, and nothing may go through a proxy.
DROPPED = re.compile(r"^(FALLBACK_.*|PORT|https?_proxy|all_proxy|no_proxy)$", re.IGNORECASE)
LOG_PROBLEMS = re.compile(r"Traceback|WORKER TIMEOUT|\bERROR\b|\bCRITICAL\b|Worker \(pid:\d+\) was sent")


def clean_env(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without FALLBACK_*, PORT and proxy variables, plus `settings`."""
    env = {key: value for key, value in os.environ.items() if not DROPPED.match(key)}
    env.update(settings)
    return env


def find_nginx() -> str | None:
    """nginx's binary: on the PATH, or where Debian puts it (/usr/sbin is not on every user's PATH)."""
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def behind_proxy_env(folder: Path, check_url: str) -> dict[str, str]:
    """The settings of a fallback behind a local nginx (one trusted hop), its database in `folder`, probing
    `check_url`; its main URL a localhost port nothing listens on, as the nginx rows have always had it."""
    return clean_env(
        {
            "FALLBACK_MAIN_URL": f"http://localhost:{free_port()}/",
            "FALLBACK_CHECK_URLS": check_url,
            "FALLBACK_DATABASE": str(folder / "fallback.db"),
            "FALLBACK_TRUSTED_PROXIES": "1",
            "FALLBACK_SECRET_KEY": "bench-secret-key",
        }
    )


def loopback_session() -> requests.Session:
    """A keep-alive session that ignores proxy variables and .netrc: loopback only."""
    session = requests.Session()
    session.trust_env = False
    return session


def rss_kib(pid: int, field: str = "VmRSS") -> int | None:
    """A memory figure of a process from /proc/<pid>/status (VmRSS, VmHWM) in KiB, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers: the master's children."""
    try:
        return sorted(int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split())
    except OSError:
        return []


def cpu_seconds(master: int) -> float:
    """User and system CPU seconds used so far by a server: its master and live workers, from /proc/<pid>/stat."""
    ticks = 0
    for pid in [master, *worker_pids(master)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone between the listing and the read
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return ticks / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float | None:
    """The `share` percentile (0-1) of `values`, nearest rank; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


class MainSite:
    """A tiny main site on 127.0.0.1 for the checker to probe: 200 and a short page, always."""

    class _Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the base class's name
            body = b"<!doctype html><title>Main site</title><h1>Welcome</h1>\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    def __init__(self):
        self.server = ThreadingHTTPServer((HOST, 0), self._Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_port}/"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True, name="main site"
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def wait_for_status(url: str, status: int, seconds: float = 10, in_a_row: int = 10) -> None:
    """Until a visitor path answers `status` `in_a_row` times over new connections, so every worker has re-read
    the flag (each does within 0.5 s); bounded."""
    deadline = time.monotonic() + seconds
    streak = 0
    while time.monotonic() < deadline and streak < in_a_row:
        with loopback_session() as session:  # a new connection each time: gunicorn spreads them over its workers
            answer = session.get(url, headers={"Accept": "text/html"}, timeout=5, allow_redirects=False)
        streak = streak + 1 if answer.status_code == status else 0
        if streak < in_a_row:
            time.sleep(0.05)
    if streak < in_a_row:
        raise RuntimeError(f"{url} did not answer {status} {in_a_row} times in a row within {seconds} s")


class Fallback:
    """`fallback serve` as a process group on a free loopback port; stopped (group-wide) by `stop`."""

    def __init__(self, folder: Path, env: dict[str, str], workers: int, extra: list[str] = ()):
        self.folder, self.env, self.workers = folder, env, workers
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = folder / f"serve-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self.extra = list(extra)

    def cli(self, *args: str, timeout: float = 60) -> str:
        """One `fallback` command on the same database and settings; its output."""
        done = subprocess.run(
            fallback_command() + list(args),
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"fallback {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def force(self, mode: str, reason: str) -> None:
        """`fallback mode MODE`, then wait until every worker answers it: the page (503) or the redirect (302)."""
        self.cli("mode", mode, "--reason", reason)
        wait_for_status(self.url + "/", {"down": 503, "up": 302}[mode])

    def start(self) -> Fallback:
        """Start serving and wait until every worker is up (bounded), or raise with the log's tail."""
        self.process = spawn_group(
            fallback_command()
            + ["serve", "--host", HOST, "--port", str(self.port), "--workers", str(self.workers), *self.extra],
            self.env,
            self.folder,
            self.log,
        )
        answering = answers(self.url + "/_fallback/status.json", ok=True)
        wait_ready(
            self.process,
            lambda: answering() and len(self.pids()) >= self.workers,
            "fallback serve",
            self.log_tail,
            STARTUP_SECONDS,
        )
        return self

    def pids(self) -> list[int]:
        return worker_pids(self.process.pid) if self.process else []

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log, lines)

    def log_problems(self) -> list[str]:
        """Lines of the server's log that tell of an error, a traceback or a killed worker."""
        try:
            return [line for line in self.log.read_text(errors="replace").splitlines() if LOG_PROBLEMS.search(line)]
        except OSError:
            return []

    def stop(self) -> None:
        """Stop serving; idempotent. See stop_group."""
        if self.process is not None:
            stop_group(self.process)


class Client(threading.Thread):
    """One visitor after another on one keep-alive connection: page views, then a submission."""

    def __init__(self, base: str, number: int, deadline: float, label: str = "c"):
        super().__init__(daemon=True, name=f"load client {number}")
        self.base, self.number, self.deadline, self.label = base, number, deadline, label
        self.views: Counter = Counter()
        self.posts: Counter = Counter()
        self.view_ms: list[float] = []
        self.post_ms: list[float] = []
        self.acknowledged: list[str] = []
        self.bad_pages = 0  # a 503 without the form, or an answer that is not the page
        self.errors: Counter = Counter()  # connection errors and timeouts, by exception name

    def run(self) -> None:
        headers = {
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8",
            "Accept-Language": LANGUAGES[self.number % len(LANGUAGES)],
        }
        sent = 0
        with loopback_session() as session:
            while time.monotonic() < self.deadline:
                try:
                    page = None
                    for view in range(VIEWS_PER_SUBMISSION):
                        path = VISITOR_PATHS[(self.number + sent + view) % len(VISITOR_PATHS)]
                        started = time.perf_counter()
                        page = session.get(self.base + path, headers=headers, timeout=REQUEST_TIMEOUT)
                        self.view_ms.append((time.perf_counter() - started) * 1000)
                        self.views[page.status_code] += 1
                    token, landing = TOKEN.search(page.text), LANDING.search(page.text)
                    if page.status_code != 503 or not token or not landing:
                        self.bad_pages += 1
                        continue
                    email = f"{self.label}{self.number}-{sent}@load.example"
                    sent += 1
                    data = {
                        "token": token.group(1),
                        "path": html.unescape(landing.group(1)),
                        "email": email,
                        "name": f"Client {self.number}",
                        "message": "Please call me back.",
                        "website": "",
                        "consent": "y",
                    }
                    started = time.perf_counter()
                    answer = session.post(
                        self.base + "/_fallback/contact",
                        data=data,
                        headers=headers,
                        timeout=POST_TIMEOUT,
                        allow_redirects=False,
                    )
                    self.post_ms.append((time.perf_counter() - started) * 1000)
                    self.posts[answer.status_code] += 1
                    if answer.status_code == 303 and answer.headers.get("Location", "").endswith("/_fallback/thanks"):
                        self.acknowledged.append(email)
                except requests.RequestException as error:
                    self.errors[type(error).__name__] += 1
                    time.sleep(0.05)  # a refused connection must not spin


def run_clients(base: str, clients: int, seconds: float, label: str) -> list[Client]:
    """`clients` client threads for `seconds`; joined (bounded) before returning."""
    deadline = time.monotonic() + seconds
    threads = [Client(base, number, deadline, label) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + POST_TIMEOUT + 5)
    return threads


# The start of a request whose head never ends: what slow clients (slowloris) send.
SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n"
# partial: the start of a head, then silence. trickle: a head a byte at a time, never ending (a header line
# of "a"s). kept-alive: one whole request answered, then a partial head on the same connection.
# pipelined: one whole request and a partial head in a single send. body: a whole head announcing a
# 5000-byte body, then the body a byte at a time; chunked-body: the same with a chunked body that never
# ends; both spread over every route that takes a body (BODY_ROUTES).
SLOW_MODES = ("partial", "trickle", "kept-alive", "pipelined", "body", "chunked-body")
BODY_MODES = ("body", "chunked-body")
WHOLE_REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
TRICKLE = SLOW_HEAD + b"X-Pad: "  # then "a" after "a"
# Every route that reads a body (each POST, and the API's PUT), as the server under test has them all on.
BODY_ROUTES = (
    "POST /_fallback/contact",
    "POST /_fallback/admin/login",
    "POST /_fallback/admin/logout",
    "POST /_fallback/admin/mode",
    "POST /_fallback/admin/notice",
    "POST /_fallback/admin/leads/1/delete",
    "POST /_fallback/admin/webhooks/1/retry",
    "POST /_fallback/admin/followup/send",
    "POST /_fallback/unsubscribe?t=1.x",
    "POST /_fallback/api/v1/verdicts",
    "PUT /_fallback/api/v1/mode",
    "PUT /_fallback/api/v1/notice",
)
SLOW_BODY_LENGTH = 5000


def slow_body_head(route: str, chunked: bool) -> bytes:
    """A whole request head on `route` announcing a body (5000 bytes, or chunked) that will come a byte at a time."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {SLOW_BODY_LENGTH}"
    head = f"{route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n{framing}\r\n\r\n"
    # A chunk as long as the body announced: its bytes then trickle.
    return head.encode() + (f"{SLOW_BODY_LENGTH:x}\r\n".encode() if chunked else b"")


class SlowSockets(threading.Thread):
    """`count` loopback connections that start a request and never finish its head, kept at `count` until stopped.

    Every `interval` seconds a trickling socket sends one more byte. A socket the server closes
    (or answers) is counted in `closed_by_server` and replaced by a new one, as an attacker would.
    """

    def __init__(
        self,
        host: str,
        port: int,
        count: int,
        mode: str = "partial",
        interval: float = 0.5,
        stop_by: float | None = None,
    ):
        super().__init__(daemon=True, name="slow sockets")
        if mode not in SLOW_MODES or not 1 <= count <= 1000:
            raise ValueError(f"expected a mode in {SLOW_MODES} and 1 <= count <= 1000")
        self.address, self.count, self.mode, self.interval = (host, port), count, mode, interval
        self.stop_by = stop_by if stop_by is not None else time.monotonic() + 600
        self.sent: dict[socket.socket, int] = {}  # each open socket: bytes of its head sent so far
        self.answer_due: set[socket.socket] = set()
        self.opened = self.closed_by_server = self.failed_opens = 0
        self.answers: Counter = Counter()  # the status lines the server answered slow requests with
        self.halt = threading.Event()
        self.ready = threading.Event()

    def _open(self) -> None:
        try:
            sock = socket.create_connection(self.address, timeout=2)
            if self.mode == "kept-alive":
                sock.sendall(WHOLE_REQUEST)
                sock.recv(65536)  # the answer (a redirect or the page), its head at least
            if self.mode in BODY_MODES:
                route = BODY_ROUTES[self.opened % len(BODY_ROUTES)]
                first = slow_body_head(route, self.mode == "chunked-body") + b"a"
            else:
                first = {
                    "partial": SLOW_HEAD,
                    "trickle": SLOW_HEAD[:1],
                    "kept-alive": SLOW_HEAD,
                    "pipelined": WHOLE_REQUEST + SLOW_HEAD,
                }[self.mode]
            sock.sendall(first)
        except OSError:
            self.failed_opens += 1
            return
        sock.setblocking(False)
        self.sent[sock] = len(first)
        if self.mode == "pipelined":
            self.answer_due.add(sock)
        self.opened += 1

    def _closed(self, sock: socket.socket) -> bool:
        """Whether the server has closed or answered the slow request on `sock`."""
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if data and sock in self.answer_due:
            self.answer_due.discard(sock)  # the answer to the whole request sent before the slow one
            return False
        if data.startswith(b"HTTP/1.1 1"):
            return False  # a 100 Continue: the server waits for the body
        if data:
            self.answers[data.split(b"\r\n", 1)[0].decode("latin-1")] += 1
        return True

    def _trickle(self, sock: socket.socket) -> None:
        offset = self.sent[sock]
        try:
            sock.send(b"a" if self.mode in BODY_MODES else TRICKLE[offset : offset + 1] or b"a")
            self.sent[sock] = offset + 1
        except OSError:
            pass  # seen as closed on the next round

    def run(self) -> None:
        try:
            while len(self.sent) < self.count and not self.halt.is_set() and time.monotonic() < self.stop_by:
                self._open()
            self.ready.set()
            while not self.halt.wait(self.interval) and time.monotonic() < self.stop_by:
                for sock in list(self.sent):
                    if self._closed(sock):
                        self.closed_by_server += 1
                        del self.sent[sock]
                        self.answer_due.discard(sock)
                        sock.close()
                    elif self.mode == "trickle" or self.mode in BODY_MODES:
                        self._trickle(sock)
                for _ in range(self.count - len(self.sent)):
                    self._open()
        finally:
            self.ready.set()
            for sock in self.sent:
                sock.close()
            self.sent.clear()

    def stop(self) -> None:
        """Close every socket and wait for the thread (bounded)."""
        self.halt.set()
        self.join(10)


class MemorySampler(threading.Thread):
    """Every second until stopped: each worker's resident memory, keeping the peak."""

    def __init__(self, pids: list[int], stop_by: float):
        super().__init__(daemon=True, name="memory sampler")
        self.pids, self.stop_by = pids, stop_by
        self.peak = {pid: rss_kib(pid) or 0 for pid in pids}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(1.0) and time.monotonic() < self.stop_by:
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], rss_kib(pid) or 0)


def exported_emails(base: str) -> list[str]:
    """Every address in the CSV export, read as a stream."""
    with loopback_session() as session:
        response = session.get(
            base + "/_fallback/admin/export.csv", timeout=300, headers={"Authorization": f"Bearer {EXPORT_TOKEN}"}
        )
        response.raise_for_status()
        text = io.StringIO(response.content.decode("utf-8"), newline="")
    return [row["email"] for row in csv.DictReader(text)]


@contextlib.contextmanager
def serving(workers: int):
    """`fallback serve` in a temporary folder of its own, the page forced on, its checker probing a local site.

    Stopped and removed on the way out, on error too; the server's log problems are kept in `problems`.
    """
    folder = Path(tempfile.mkdtemp(prefix="fallback-load-"))
    main_site = MainSite()
    env = clean_env(
        {
            "FALLBACK_MAIN_URL": main_site.url,
            "FALLBACK_CHECK_URLS": main_site.url,
            "FALLBACK_DATABASE": str(folder / "fallback.db"),
            "FALLBACK_RATE_LIMIT": "0",
            "FALLBACK_FORM_MIN_SECONDS": "0",
            "FALLBACK_EXPORT_TOKEN": EXPORT_TOKEN,
            "FALLBACK_API_TOKEN": API_TOKEN,
            "FALLBACK_ADMIN_PASSWORD": "load-test-admin-password",
            "FALLBACK_SECRET_KEY": "load-test-secret-key",
            "FALLBACK_SITE_NAME": "Load test",
        }
    )
    server = Fallback(folder, env, workers)
    server.problems = []
    try:
        server.start()
        # Only `fallback serve` creates the database: the page is forced on once it exists.
        server.force("down", "load test")
        yield server
    finally:
        server.stop()
        main_site.close()
        server.problems = server.log_problems()
        shutil.rmtree(folder, ignore_errors=True)


def run_load(duration: float = 60.0, clients: int = 8, workers: int = 2, warm_up: float | None = None) -> dict:
    """Serve, warm up, load for `duration` seconds, export; the figures (see the module's docstring)."""
    if not 0 < duration <= 24 * 3600 or not 1 <= clients <= 256 or not 1 <= workers <= 64:
        raise ValueError("expected 0 < duration <= 86400, 1 <= clients <= 256, 1 <= workers <= 64")
    warm_up = min(5.0, max(2.0, duration / 10)) if warm_up is None else warm_up
    sampler = None
    try:
        with serving(workers) as server:
            # Warm-up: every worker renders its pages in both languages and opens its connections.
            warm = run_clients(server.url, max(clients, workers * 2), warm_up, "warm")
            pids = server.pids()
            memory_start = {pid: rss_kib(pid) for pid in pids}
            sampler = MemorySampler(pids, time.monotonic() + duration + POST_TIMEOUT + 10)
            sampler.start()
            started = time.monotonic()
            threads = run_clients(server.url, clients, duration, "c")
            elapsed = time.monotonic() - started
            sampler.halt.set()
            sampler.join(5)
            memory_end = {pid: rss_kib(pid) for pid in pids}
            pids_end = server.pids()
            exported = exported_emails(server.url)
            still_running = sum(thread.is_alive() for thread in threads + warm)
    finally:
        if sampler is not None:
            sampler.halt.set()
    problems = server.problems

    views = sum((thread.views for thread in threads), Counter())
    posts = sum((thread.posts for thread in threads), Counter())
    errors = sum((thread.errors for thread in threads + warm), Counter())
    acknowledged = [email for thread in threads + warm for email in thread.acknowledged]
    exported_set = set(exported)
    lost = sorted(set(acknowledged) - exported_set)
    done = sum(views.values()) + sum(posts.values())
    view_ms = [ms for thread in threads for ms in thread.view_ms]
    post_ms = [ms for thread in threads for ms in thread.post_ms]
    memory = {
        str(pid): {
            "start_kib": memory_start[pid],
            "peak_kib": sampler.peak.get(pid),
            "end_kib": memory_end[pid],
            "growth_kib": (memory_end[pid] or 0) - (memory_start[pid] or 0),
        }
        for pid in pids
    }
    return {
        "duration_s": round(elapsed, 1),
        "warm_up_s": warm_up,
        "clients": clients,
        "workers": workers,
        "requests": done,
        "requests_per_s": round(done / elapsed, 1),
        "page_views": sum(views.values()),
        "page_views_by_status": {str(status): n for status, n in sorted(views.items())},
        "submissions": sum(posts.values()),
        "submissions_per_s": round(sum(posts.values()) / elapsed, 1),
        "submissions_by_status": {str(status): n for status, n in sorted(posts.items())},
        "page_ms_p50": _rounded(percentile(view_ms, 0.50)),
        "page_ms_p99": _rounded(percentile(view_ms, 0.99)),
        "submission_ms_p50": _rounded(percentile(post_ms, 0.50)),
        "submission_ms_p99": _rounded(percentile(post_ms, 0.99)),
        # The contact page is a 503 by design; any other 5xx, and any 5xx to a submission, is a failure.
        "server_errors_5xx": sum(n for status, n in views.items() if status >= 500 and status != 503)
        + sum(n for status, n in posts.items() if status >= 500),
        "bad_pages": sum(thread.bad_pages for thread in threads + warm),
        "submissions_rejected": sum(n for status, n in posts.items() if status != 303),
        "client_errors": dict(errors),
        "clients_still_running": still_running,
        "leads_acknowledged": len(acknowledged),
        "leads_exported": len(exported_set & set(acknowledged)),
        "leads_lost": len(lost),
        "lost_examples": lost[:5],
        "export_rows": len(exported),
        "export_duplicates": len(exported) - len(exported_set),
        "worker_memory": memory,
        "worker_rss_growth_kib": max((entry["growth_kib"] for entry in memory.values()), default=0),
        "workers_restarted": len(set(pids) - set(pids_end)),
        "server_log_problems": problems[:10],
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def failures(figures: dict) -> list[str]:
    """What went wrong in a run, in words; empty when nothing did."""
    found = []
    if figures["server_errors_5xx"]:
        found.append(f"{figures['server_errors_5xx']} answers were 5xx (besides the page's designed 503)")
    if figures["leads_lost"]:
        found.append(
            f"{figures['leads_lost']} acknowledged leads are missing from the export, "
            f"such as {', '.join(figures['lost_examples'])}"
        )
    if figures["leads_acknowledged"] == 0:
        found.append("no submission was acknowledged")
    if figures["submissions_rejected"]:
        found.append(
            f"{figures['submissions_rejected']} submissions were not answered 303: {figures['submissions_by_status']}"
        )
    if figures["bad_pages"]:
        found.append(f"{figures['bad_pages']} page views did not get the contact page and its form")
    if figures["client_errors"]:
        found.append(f"connection errors or timeouts: {figures['client_errors']}")
    if figures["clients_still_running"]:
        found.append(f"{figures['clients_still_running']} client threads did not finish in time")
    if figures["workers_restarted"]:
        found.append(f"{figures['workers_restarted']} workers were replaced during the run")
    if figures["export_duplicates"]:
        found.append(f"{figures['export_duplicates']} addresses appear twice in the export")
    return found


def report(figures: dict) -> str:
    """The figures for people."""
    kib = 1024
    lines = [
        f"fallback load: {figures['clients']} clients, {figures['workers']} workers, {figures['duration_s']} s "
        f"(after {figures['warm_up_s']:g} s of warm-up)",
        f"  requests            {figures['requests']} ({figures['requests_per_s']}/s)",
        f"  page views          {figures['page_views']} by status {figures['page_views_by_status']}, "
        f"p50 {figures['page_ms_p50']} ms, p99 {figures['page_ms_p99']} ms",
        f"  submissions         {figures['submissions']} ({figures['submissions_per_s']}/s) by status "
        f"{figures['submissions_by_status']}, p50 {figures['submission_ms_p50']} ms, "
        f"p99 {figures['submission_ms_p99']} ms",
        f"  5xx (not the page)  {figures['server_errors_5xx']}",
        f"  leads               {figures['leads_acknowledged']} acknowledged (303, warm-up included), "
        f"{figures['leads_exported']} of them exported, {figures['leads_lost']} lost; "
        f"{figures['export_rows']} rows in the export",
        f"  connection errors   {sum(figures['client_errors'].values())}",
        "  worker memory (RSS) start -> peak -> end, growth:",
    ]
    for pid, entry in figures["worker_memory"].items():
        start, peak, end = ((entry[key] or 0) / kib for key in ("start_kib", "peak_kib", "end_kib"))
        lines.append(
            f"    pid {pid:>7}  {start:6.1f} -> {peak:6.1f} -> {end:6.1f} MiB, {entry['growth_kib'] / kib:+.1f} MiB"
        )
    if figures["server_log_problems"]:
        lines.append("  server log problems:")
        lines += [f"    {line}" for line in figures["server_log_problems"]]
    found = failures(figures)
    lines.append("FAIL: " + "; ".join(found) if found else "PASS: no 5xx, no lost lead, no connection error")
    return "\n".join(lines)


def phase_figures(threads: list[Client], elapsed: float) -> dict:
    """Ordinary visitors' figures over one phase: requests, latency percentiles, timeouts and other errors."""
    view_ms = [ms for thread in threads for ms in thread.view_ms]
    post_ms = [ms for thread in threads for ms in thread.post_ms]
    done = len(view_ms) + len(post_ms)
    return {
        "requests": done,
        "requests_per_s": round(done / elapsed, 1),
        "page_ms_p50": _rounded(percentile(view_ms, 0.50)),
        "page_ms_p99": _rounded(percentile(view_ms, 0.99)),
        "submission_ms_p99": _rounded(percentile(post_ms, 0.99)),
        "client_errors": dict(sum((thread.errors for thread in threads), Counter())),
    }


def run_attack(
    slow_sockets: int = 150, mode: str = "trickle", duration: float = 20.0, clients: int = 4, workers: int = 2
) -> dict:
    """Ordinary visitors for `duration` seconds, then as long again while `slow_sockets` never finish their heads.

    The attack is kept up (a socket the server closes is replaced) for the whole second phase, so
    it spans the worker's head deadline; the row is the second phase's p99 against the first's.
    """
    if not 0 < duration <= 3600 or not 1 <= clients <= 256 or not 1 <= workers <= 64 or mode not in SLOW_MODES:
        raise ValueError(
            f"expected 0 < duration <= 3600, 1 <= clients <= 256, 1 <= workers <= 64, a mode in {SLOW_MODES}"
        )
    attack = None
    try:
        with serving(workers) as server:
            run_clients(server.url, max(clients, workers * 2), 2.0, "warm")
            started = time.monotonic()
            quiet = phase_figures(run_clients(server.url, clients, duration, "q"), time.monotonic() - started)
            attack = SlowSockets(HOST, server.port, slow_sockets, mode, stop_by=time.monotonic() + duration + 90)
            attack.start()
            if not attack.ready.wait(60):
                raise RuntimeError("the slow sockets could not all be opened within 60 s")
            opened_before = attack.opened
            started = time.monotonic()
            under_attack = phase_figures(run_clients(server.url, clients, duration, "a"), time.monotonic() - started)
            still_open = len(attack.sent)
            attack.stop()  # before the server stops: its closing them is not the deadline's doing
    finally:
        if attack is not None:
            attack.stop()
    return {
        "slow_sockets": slow_sockets,
        "mode": mode,
        "duration_s": duration,
        "clients": clients,
        "workers": workers,
        "quiet": quiet,
        "under_attack": under_attack,
        "slow_sockets_opened": opened_before,
        "slow_sockets_open_at_end": still_open,
        "slow_sockets_closed_by_server": attack.closed_by_server,
        "slow_sockets_failed_to_open": attack.failed_opens,
        "slow_sockets_answers": dict(attack.answers),
        "server_log_problems": server.problems[:10],
    }


def attack_report(figures: dict) -> str:
    """The attack row for people: ordinary visitors' p99, quiet and while the slow sockets are open."""
    quiet, attacked = figures["quiet"], figures["under_attack"]
    return "\n".join(
        [
            f"fallback slow clients: {figures['slow_sockets']} slow sockets ({figures['mode']}), {figures['clients']} "
            f"clients, {figures['workers']} workers, {figures['duration_s']:g} s per phase",
            f"  quiet           {quiet['requests_per_s']} req/s, page p50 {quiet['page_ms_p50']} ms, "
            f"p99 {quiet['page_ms_p99']} ms, submission p99 {quiet['submission_ms_p99']} ms, "
            f"errors {quiet['client_errors'] or 0}",
            f"  under attack    {attacked['requests_per_s']} req/s, page p50 {attacked['page_ms_p50']} ms, "
            f"p99 {attacked['page_ms_p99']} ms, submission p99 {attacked['submission_ms_p99']} ms, "
            f"errors {attacked['client_errors'] or 0}",
            f"  slow sockets    {figures['slow_sockets_opened']} opened, {figures['slow_sockets_open_at_end']} open at "
            f"the end, {figures['slow_sockets_closed_by_server']} closed by the server (and replaced), "
            f"{figures['slow_sockets_failed_to_open']} failed to open, answered "
            f"{figures['slow_sockets_answers'] or 'nothing'}",
        ]
        + [f"  server log: {line}" for line in figures["server_log_problems"]]
    )


def main() -> int:
    """Command line: run, print the figures, exit 1 on any failure, 2 if the run could not be done."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load after the warm-up (default 60)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--slow-sockets",
        type=int,
        metavar="N",
        help="the attack row instead: ordinary visitors while N connections never finish their "
        "request heads (--duration seconds quiet, then as long under attack)",
    )
    parser.add_argument(
        "--slow-mode",
        choices=SLOW_MODES,
        default="trickle",
        help="how the slow sockets send (default trickle: a byte at a time)",
    )
    args = parser.parse_args()

    def terminate(signum, frame):
        raise SystemExit(2)

    signal.signal(signal.SIGTERM, terminate)  # stop the server and clients on `kill` too
    try:
        if args.slow_sockets is not None:
            figures = run_attack(args.slow_sockets, args.slow_mode, args.duration, args.clients, args.workers)
            print(json.dumps(figures, indent=2) if args.json else attack_report(figures))
            return 1 if figures["under_attack"]["client_errors"] else 0
        figures = run_load(args.duration, args.clients, args.workers)
    except (RuntimeError, ValueError, OSError, requests.RequestException, subprocess.SubprocessError) as error:
        print(f"load: could not run: {error}", file=sys.stderr)
        return 2
    figures["failures"] = failures(figures)
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 1 if figures["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
