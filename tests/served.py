"""Run the real thing on 127.0.0.1 for integration tests (and bench/quorum.py): `fallback serve` under gunicorn,
and `fallback probe` agents reporting to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from helpers import ADMIN_PASSWORD
from procs import answers, fallback_command, free_port, log_tail, spawn_group, start_group, stop_group

from fallback.core.flag import Flag
from fallback.storage import Storage, open_storage

STARTUP_SECONDS = 20
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
QUORUM_TOKEN = "quorum-api-token-for-the-tests"


def quorum_env(check_url: str, quorum: int, database: str | None = None) -> dict:
    """An instance probing `check_url` every second (timeout 1 s, fall 2, rise 2) with FALLBACK_QUORUM=`quorum`,
    the admin area and the control API on: a verdict is then fresh for 3 * 1 + 1 = 4 s."""
    env = {
        "FALLBACK_MAIN_URL": check_url,
        "FALLBACK_CHECK_URLS": check_url,
        "FALLBACK_QUORUM": str(quorum),
        "FALLBACK_CHECK_INTERVAL": "1",
        "FALLBACK_CHECK_TIMEOUT": "1",
        "FALLBACK_MAX_LATENCY": "1",
        "FALLBACK_FALL": "2",
        "FALLBACK_RISE": "2",
        "FALLBACK_RATE_LIMIT": "0",
        "FALLBACK_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "FALLBACK_SECRET_KEY": "quorum-test-secret",
        "FALLBACK_API_TOKEN": QUORUM_TOKEN,
    }
    return env | ({"FALLBACK_DATABASE": database} if database else {})


def run_cli(args: list[str], env: dict, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run one `fallback` command to completion."""
    return subprocess.run(fallback_command() + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


class Served:
    """A `fallback serve` process group, started on a free loopback port."""

    def __init__(self, env: dict, cwd: Path, workers: int = 2, port: int | None = None):
        self.env = {**os.environ, **env}
        self.cwd = cwd
        self.workers = workers
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"serve-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self._storage: Storage | None = None

    @property
    def database(self) -> str:
        """Its FALLBACK_DATABASE: the one set, or fallback.db in its working directory."""
        return self.env.get("FALLBACK_DATABASE") or str(self.cwd / "fallback.db")

    def stored_flag(self) -> Flag:
        """The flag as its database holds it now, read straight from there: no worker's cache in between, and no
        status document's (status.json keeps its reading for a second)."""
        if self._storage is None:
            self._storage = open_storage(self.database)
        return self._storage.flag.read()

    @property
    def vantage(self) -> str:
        """The name it votes under with FALLBACK_QUORUM above 1: host name and port (fallback.quorum)."""
        return f"{socket.gethostname()}:{self.port}"

    def start(self) -> Served:
        """Start and wait until the app answers, or fail with its log."""
        self.process = start_group(
            fallback_command()
            + ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)],
            self.env,
            self.cwd,
            self.log,
            answers(self.url + "/_fallback/status.json", ok=True),
            name="fallback serve",
            seconds=STARTUP_SECONDS,
        )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the whole process group (master and workers) and wait for it."""
        stop_group(self.process, sig, grace=15)
        if self._storage is not None:
            self._storage.close()
            self._storage = None

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def worker_instance(owner: str, servers: list[Served]) -> Served:
    """The instance whose master process is the parent of the worker named in `owner` (host:pid:thread)."""
    pid = int(owner.split(":")[1])
    parent = int(
        next(
            line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("PPid:")
        )
    )
    return next(server for server in servers if server.process.pid == parent)


class Agent:
    """One `fallback probe --report-to` process group, probing `site_url`; its output in a log file in `folder`.

    `settings` are more FALLBACK_* variables for it (FALLBACK_CHECK_INTERVAL, say: by default it probes every 5 s
    until the instance's first answer tells it the instance's interval).
    """

    def __init__(
        self,
        folder: Path,
        report_to: str,
        site_url: str,
        *args: str,
        token: str,
        fall: int = 3,
        settings: dict | None = None,
    ):
        base = {name: value for name, value in os.environ.items() if name not in PROXY_VARIABLES}
        self.env = {
            **base,
            "FALLBACK_MAIN_URL": site_url,
            "FALLBACK_API_TOKEN": token,
            "FALLBACK_FALL": str(fall),
            "FALLBACK_RISE": "2",
            "FALLBACK_CHECK_TIMEOUT": "1",
            **(settings or {}),
        }
        self.log = folder / f"agent-{time.monotonic_ns()}.log"
        command = fallback_command() + ["probe", "--report-to", report_to, *args]
        self.process: subprocess.Popen = spawn_group(command, self.env, folder, self.log)

    def output(self) -> str:
        """The last 100 lines it logged."""
        return log_tail(self.log, 100)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop it with `sig`; its exit status (-9 if it had to be killed).

        The grace is generous for a busy machine, where a report in flight may take seconds to be answered: an agent
        that ignored the signal is still killed, and says so by its status."""
        stop_group(self.process, sig, grace=30)
        return self.process.returncode


def quorum_agent(folder: Path, report_to: str, site_url: str, name: str) -> Agent:
    """An agent named `name` with quorum_env's check settings (every second, timeout 1 s, fall 2, rise 2)."""
    settings = {"FALLBACK_CHECK_INTERVAL": "1", "FALLBACK_MAX_LATENCY": "1"}
    return Agent(folder, report_to, site_url, "--name", name, token=QUORUM_TOKEN, fall=2, settings=settings)
