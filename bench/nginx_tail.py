"""The tail of deploy/nginx's micro-cache: the down page through the recipe with the main site refused, against fallback
served alone, at 50 connections, on loopback only.

    python bench/nginx_tail.py                 # 3 rounds of 8 s runs, about a minute
    python bench/nginx_tail.py --seconds 5 --rounds 5 --json

Starts a tiny main site for fallback's checker (load.MainSite), `fallback serve` (load.Fallback) forced down, and
nginx (/usr/sbin/nginx) running deploy/nginx/fallback.conf rendered as tests/proxies.py renders it, with the main
upstream a free loopback port nothing listens on: every request is refused by the main site and falls back. Each round
runs wrk (-t2 -c50, the bench's settings) three times, back to back, so drift on a shared machine hits all alike:

  1. fallback alone;
  2. a fresh nginx, its cache empty: the first wave of 50 requests waits on proxy_cache_lock, which nginx re-checks
     every 500 ms, and wrk's latency correction (for the requests a stalled connection did not send) counts each of
     those waits many times over; shown for information, because a bench that starts cold measures that start;
  3. the same nginx again, the page now cached: the steady state, against the target (p99 < 50 ms).

The median round of each is reported. Each run also records the CPU time of the client (wrk, from this process's
RUSAGE_CHILDREN) and of the servers (from /proc), because on a 2-core machine the load generator competes with what
it measures, and the 1-minute load average, because other work on the machine does too.

For the bench (bench/run.py or its successor): `nginx_tail.measure(folder, seconds, rounds, log)` returns the figures,
`nginx_tail.rows(figures)` the table rows (row, figure, ratio, detail, target) and `nginx_tail.verdicts(figures)`
the check. Everything started is stopped at the end, on error or `kill` too.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import grp
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from load import (  # noqa: E402
    HOST,
    Fallback,
    MainSite,
    behind_proxy_env,
    cpu_seconds,
    find_nginx,
    free_port,
    stop_group,
)

TEMPLATE = HERE.parent / "deploy" / "nginx" / "fallback.conf"
CONNECTIONS = 50
PATH = "/campaign/tv"
# The bench's page request; Host is the name the recipe serves (server_name localhost).
HEADERS = ("Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8", "Host: localhost")
P99_TARGET_MS = 50.0
STARTUP_SECONDS = 10.0


def render(template: str, **values: str) -> str:
    """The template with its @PLACEHOLDERS@ replaced, as sed would; every placeholder must be given."""
    for name, value in values.items():
        template = template.replace(f"@{name}@", value)
    leftover = re.findall(r"@[A-Z_]+@", template)
    if leftover:
        raise RuntimeError(f"{TEMPLATE.name} has placeholders this bench does not know: {leftover}")
    return template


class Nginx:
    """A foreground nginx serving the rendered recipe on a free loopback port, with the main upstream refused."""

    def __init__(self, folder: Path, fallback_port: int, template: Path = TEMPLATE):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        # A free port nothing listens on: the main site is down and refuses connections.
        self.main_port = free_port()
        (folder / "fallback.conf").write_text(
            render(
                template.read_text(),
                LISTEN=f"{HOST}:{self.port}",
                SERVER_NAME="localhost",
                MAIN_UPSTREAM=f"{HOST}:{self.main_port}",
                FALLBACK_UPSTREAM=f"{HOST}:{fallback_port}",
                CACHE_PATH=str(folder / "cache"),
            )
        )
        # As root, workers would otherwise run as `nobody`, who cannot enter a private temporary folder.
        user = f"user {getpass.getuser()} {grp.getgrgid(os.getegid()).gr_name};" if os.geteuid() == 0 else ""
        temp = " ".join(
            f"{kind}_temp_path {folder}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # The bench's own nginx.conf (bench/run.py's bench_nginx): the recipe is what is measured, not this file.
        (folder / "nginx.conf").write_text(
            f"{user}\nworker_processes 2;\nerror_log {folder}/error.log;\nevents {{ worker_connections 1024; }}\n"
            f"http {{\n    {temp}\n    access_log off;\n    include {folder}/fallback.conf;\n}}\n"
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> Nginx:
        nginx = find_nginx()
        if nginx is None:
            raise RuntimeError("nginx is not installed (Debian package nginx-light)")
        with open(self.folder / "nginx.log", "ab") as out:
            self.process = subprocess.Popen(
                [
                    nginx,
                    "-p",
                    str(self.folder),
                    "-c",
                    str(self.folder / "nginx.conf"),
                    "-e",
                    str(self.folder / "error.log"),
                    "-g",
                    f"daemon off; master_process on; pid {self.folder}/nginx.pid;",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {self.errors()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.5):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen within {STARTUP_SECONDS:g} s: {self.errors()[-2000:]}")

    def errors(self) -> str:
        log = self.folder / "error.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid) if self.process else 0.0

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)


def wrk(url: str, seconds: float, connections: int = CONNECTIONS, headers=HEADERS) -> dict:
    """One wrk run (-t2, the bench's settings): requests/s, p50/p99/max latency (ms), answers other than 503, socket
    errors, and wrk's own CPU seconds (user + system, from RUSAGE_CHILDREN around the run)."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is missing: apt-get install -y wrk")
    command = [binary, "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s"]
    for header in headers:
        command += ["-H", header]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command + [url], capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = done.stdout
    if done.returncode != 0 or "Requests/sec" not in output:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or output.strip()}")

    def millis(pattern: str) -> float:
        value, unit = re.search(pattern + r"\s+([\d.]+)(us|ms|s)\b", output, re.MULTILINE).groups()
        return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 2)

    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "requests": requests,
        "p50_ms": millis(r"^\s*50%"),
        "p99_ms": millis(r"^\s*99%"),
        "max_ms": millis(r"^\s*Latency\s+[\d.]+\w+\s+[\d.]+\w+"),
        # Every answer should be the down page, a 503: wrk counts those as "non-2xx or 3xx".
        "not_503": requests - (int(non_ok.group(1)) if non_ok else 0),
        "socket_errors": sum(int(n) for n in sockets.groups()) if sockets else 0,
        "client_cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
    }


def loaded(url: str, seconds: float, server_cpu) -> dict:
    """A wrk run with the server's CPU seconds over it, and the machine's 1-minute load average at its end."""
    before = server_cpu()
    run = wrk(url, seconds)
    run["server_cpu_s"] = round(server_cpu() - before, 2)
    run["load_1m"] = os.getloadavg()[0]
    return run


def median(runs: list[dict], key: str = "p99_ms") -> dict:
    """The run with the median `key` (the lower middle one for an even count), with every run's value beside it."""
    ordered = sorted(runs, key=lambda run: run[key])
    return {
        **ordered[(len(ordered) - 1) // 2],
        "runs_p99_ms": [run["p99_ms"] for run in runs],
        "runs_rps": [run["rps"] for run in runs],
    }


def measure(folder: Path, seconds: float = 8, rounds: int = 3, log=print, template: Path = TEMPLATE) -> dict:
    """fallback alone, then the recipe from an empty cache (a fresh nginx), then the recipe again once the page is
    cached, for `rounds` rounds; the median round of each."""
    folder.mkdir(parents=True, exist_ok=True)  # the bench may hand over a subfolder of its own
    main_site = MainSite()
    env = behind_proxy_env(folder, main_site.url)
    fallback = Fallback(folder, env, 2)
    nginx = None
    runs: dict[str, list[dict]] = {"direct": [], "cold": [], "cached": []}
    error_lines = 0
    try:
        fallback.start()
        fallback.force("down", "nginx tail bench")
        log("nginx tail: warm-up (fallback renders its page once per worker before any cold run)")
        wrk(fallback.url + PATH, 2)

        def cpu_direct():
            return cpu_seconds(fallback.process.pid)

        def cpu_proxied():  # nginx and fallback behind it (one refresh per 5 s)
            return nginx.cpu() + cpu_seconds(fallback.process.pid)

        for number in range(rounds):
            log(f"nginx tail: round {number + 1} of {rounds}")
            runs["direct"].append(loaded(fallback.url + PATH, seconds, cpu_direct))
            # A fresh nginx each round, so that every round's first run starts from an empty cache.
            nginx = Nginx(folder / f"nginx-{number}", fallback.port, template).start()
            try:
                runs["cold"].append(loaded(nginx.url + PATH, seconds, cpu_proxied))
                runs["cached"].append(loaded(nginx.url + PATH, seconds, cpu_proxied))
                error_lines += len(nginx.errors().splitlines())
            finally:
                nginx.stop()
                nginx = None
    finally:
        if nginx is not None:
            nginx.stop()
        fallback.stop()
        main_site.close()
    return {
        **{name: median(values) for name, values in runs.items()},
        "runs": runs,
        "rounds": rounds,
        "seconds": seconds,
        "connections": CONNECTIONS,
        "nginx_error_log_lines": error_lines,
        "fallback_log_problems": fallback.log_problems()[:10],
    }


def verdicts(figures: dict) -> dict:
    run = figures["cached"]
    return {
        "nginx_p99": {
            "target": f"p99 < {P99_TARGET_MS:g} ms, every answer the 503 page",
            "pass": run["p99_ms"] < P99_TARGET_MS and not run["not_503"] and not run["socket_errors"],
        }
    }


def detail(run: dict) -> str:
    return (
        f"p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms, max {run['max_ms']:.0f} ms; p99 by round "
        + " / ".join(f"{value:.1f}" for value in run["runs_p99_ms"])
        + f"; CPU s server {run['server_cpu_s']:.1f}, wrk {run['client_cpu_s']:.1f}; load {run['load_1m']:.1f}"
    )


def rows(figures: dict) -> list[tuple]:
    """The bench's table rows: (row, figure, ratio, detail, target)."""
    direct, cold, cached = figures["direct"], figures["cold"], figures["cached"]
    check = verdicts(figures)["nginx_p99"]
    return [
        ("page from fallback alone, 50 conn. (info)", f"{direct['rps']:,.0f} req/s", "1.00", detail(direct), ""),
        (
            "page via deploy/nginx, main refused, empty cache at start (info)",
            f"{cold['rps']:,.0f} req/s",
            f"{cold['rps'] / direct['rps']:.1f}x",
            detail(cold),
            "",
        ),
        (
            "page via deploy/nginx, main refused, page cached",
            f"{cached['rps']:,.0f} req/s",
            f"{cached['rps'] / direct['rps']:.1f}x",
            detail(cached),
            f"{check['target']}: **{'PASS' if check['pass'] else 'FAIL'}**",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8, help="length of each wrk run (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="the recipe to render (default: the repo's)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the rows")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 120 or not 1 <= args.rounds <= 10:
        parser.error("--seconds from 1 to 120, --rounds from 1 to 10")

    def terminate(signum, frame):
        raise SystemExit(2)

    signal.signal(signal.SIGTERM, terminate)  # servers are stopped on `kill` too

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        with tempfile.TemporaryDirectory(prefix="fallback-nginx-tail-") as tmp:
            figures = measure(Path(tmp), args.seconds, args.rounds, log, args.template)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        print(f"nginx tail: could not run: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**figures, "verdicts": verdicts(figures)}, indent=2))
        return 0
    print(
        f"wrk -t2 -c{CONNECTIONS}, {args.seconds:g} s a run, median p99 of {args.rounds} alternating rounds; "
        f"{os.cpu_count()} cores, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    print("| row | figure | ratio | detail | target |\n|---|---:|---:|---|---|")
    for row in rows(figures):
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
