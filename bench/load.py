"""Load and soak: mixed page views and submissions against a real `fallback serve`, on loopback only.

    python bench/load.py --duration 600 --clients 16

Starts `fallback serve` on 127.0.0.1 (its own folder and SQLite database, the page forced
on, the checker probing a tiny loopback site), runs page views and form submissions from
client threads for a fixed time, then reports requests per second, 5xx answers, leads
acknowledged (303) against leads exported, and each worker's resident memory at the start
and at the end. Exits 1 on any 5xx or any acknowledged lead missing from the export.
"""

from __future__ import annotations

import argparse
import csv
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

EXPORT_TOKEN = "load-test-export-token"
TOKEN = re.compile(r'name="token" value="([^"]+)"')
VIEWS_PER_SUBMISSION = 4


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _MainSite(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the base class's name
        self.send_response(200)
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"Welcome")

    def log_message(self, *args):
        pass


def fallback_command() -> list[str]:
    """The `fallback` script next to this Python, else `python -m fallback`."""
    script = shutil.which("fallback", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "fallback"]


def rss_kib(pid: int) -> int | None:
    """Resident memory of a process in KiB, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers: the master's children."""
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


class Client(threading.Thread):
    """One visitor after another: page views, and now and then a submission."""

    def __init__(self, base: str, number: int, deadline: float):
        super().__init__(daemon=True)
        self.base, self.number, self.deadline = base, number, deadline
        self.views: Counter = Counter()
        self.posts: Counter = Counter()
        self.acknowledged: list[str] = []
        self.errors = 0

    def run(self) -> None:
        session = requests.Session()
        headers = {"Accept": "text/html", "Accept-Language": "fr" if self.number % 3 == 0 else "en"}
        sent = 0
        while time.monotonic() < self.deadline:
            try:
                for view in range(VIEWS_PER_SUBMISSION):
                    page = session.get(f"{self.base}/campaign/{view}?utm=tv", headers=headers, timeout=10)
                    self.views[page.status_code] += 1
                email = f"c{self.number}-{sent}@load.example"
                sent += 1
                data = {"token": TOKEN.search(page.text).group(1), "path": "/campaign", "email": email,
                        "name": f"Client {self.number}", "message": "Call me back", "consent": "y"}
                answer = session.post(f"{self.base}/_fallback/contact", data=data, headers=headers, timeout=30,
                                      allow_redirects=False)
                self.posts[answer.status_code] += 1
                if answer.status_code == 303:
                    self.acknowledged.append(email)
            except (requests.RequestException, AttributeError):
                self.errors += 1


def run_load(duration: float = 60.0, clients: int = 8, workers: int = 2) -> dict:
    """Serve, load for `duration` seconds, check every acknowledged lead was exported; the figures."""
    folder = Path(tempfile.mkdtemp(prefix="fallback-load-"))
    main_site = ThreadingHTTPServer(("127.0.0.1", 0), _MainSite)
    threading.Thread(target=main_site.serve_forever, daemon=True).start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "FALLBACK_MAIN_URL": f"http://127.0.0.1:{main_site.server_port}/",
           "FALLBACK_RATE_LIMIT": "0", "FALLBACK_FORM_MIN_SECONDS": "0", "FALLBACK_EXPORT_TOKEN": EXPORT_TOKEN}
    subprocess.run(fallback_command() + ["mode", "down", "--reason", "load test"], env=env, cwd=folder, check=True,
                   capture_output=True, timeout=60)
    server = subprocess.Popen(
        fallback_command() + ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_until_serving(base, server)
        _warm_up(base)
        pids = worker_pids(server.pid)
        memory_start = {pid: rss_kib(pid) for pid in pids}
        started = time.monotonic()
        threads = [Client(base, number, started + duration) for number in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(duration + 60)
        elapsed = time.monotonic() - started
        memory_end = {pid: rss_kib(pid) for pid in pids}
        exported = _exported(base)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        main_site.shutdown()
        main_site.server_close()
        shutil.rmtree(folder, ignore_errors=True)
    views = sum((thread.views for thread in threads), Counter())
    posts = sum((thread.posts for thread in threads), Counter())
    acknowledged = [email for thread in threads for email in thread.acknowledged]
    requests_done = sum(views.values()) + sum(posts.values())
    return {
        "duration_s": round(elapsed, 1),
        "clients": clients,
        "workers": workers,
        "requests": requests_done,
        "requests_per_s": round(requests_done / elapsed, 1),
        "page_views": dict(sorted(views.items())),
        "submissions": dict(sorted(posts.items())),
        # The contact page is a 503 by design; any other 5xx, or a submission answered 5xx, is an error.
        "server_errors_5xx": sum(n for status, n in views.items() if status >= 500 and status != 503)
        + sum(n for status, n in posts.items() if status >= 500),
        "client_errors": sum(thread.errors for thread in threads),
        "leads_acknowledged": len(acknowledged),
        "leads_exported": len(exported & set(acknowledged)),
        "leads_lost": len(set(acknowledged) - exported),
        "worker_rss_kib": {str(pid): [memory_start[pid], memory_end[pid]] for pid in pids},
        "worker_rss_growth_kib": max(((memory_end[pid] or 0) - (memory_start[pid] or 0) for pid in pids), default=0),
    }


def _wait_until_serving(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"fallback serve exited with {server.returncode}")
        try:
            if requests.get(base + "/_fallback/status.json", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError("fallback serve did not start within 30 s")


def _warm_up(base: str) -> None:
    """Every worker renders its pages, opens its connections and stores a few leads before memory is measured."""
    with requests.Session() as session:
        for number in range(200):
            language = "fr" if number % 2 else "en"
            page = session.get(base + "/warm-up", headers={"Accept": "text/html", "Accept-Language": language},
                               timeout=5)
            if number % 4 == 0:
                data = {"token": TOKEN.search(page.text).group(1), "email": f"warm-{number}@load.example",
                        "consent": "y"}
                session.post(base + "/_fallback/contact", data=data, timeout=30, allow_redirects=False)


def _exported(base: str) -> set[str]:
    response = requests.get(base + "/_fallback/admin/export.csv", timeout=120,
                            headers={"Authorization": f"Bearer {EXPORT_TOKEN}"})
    response.raise_for_status()
    return {row["email"] for row in csv.DictReader(io.StringIO(response.text, newline=""))}


def main() -> int:
    """Command line: run, print the figures, exit 1 on any 5xx or lost lead."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    figures = run_load(args.duration, args.clients, args.workers)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for name, value in figures.items():
            print(f"{name:24} {value}")
    return 1 if figures["server_errors_5xx"] or figures["leads_lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
