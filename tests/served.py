"""Run the real thing, `fallback serve` under gunicorn, on 127.0.0.1 for integration tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

STARTUP_SECONDS = 20


def fallback_command() -> list[str]:
    """The installed `fallback` console script next to this Python, else `python -m fallback`."""
    script = shutil.which("fallback", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "fallback"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(args: list[str], env: dict, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run one `fallback` command to completion."""
    return subprocess.run(fallback_command() + args, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def stop_group(process: subprocess.Popen | None, sig: int = signal.SIGTERM, grace: float = 10) -> None:
    """Stop a server started in a session of its own: `sig` to its group, SIGKILL if it lingers past `grace`."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):  # already gone: only reap it
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


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

    def start(self) -> Served:
        """Start and wait until the app answers, or fail with its log."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                fallback_command() + ["serve", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--workers", str(self.workers)],
                env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fallback serve exited {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if requests.get(self.url + "/_fallback/status.json", timeout=1).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"fallback serve did not answer within {STARTUP_SECONDS}s:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the whole process group (master and workers) and wait for it."""
        stop_group(self.process, sig, grace=15)

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
