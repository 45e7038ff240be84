"""Run the real thing, `fallback serve` under gunicorn, on 127.0.0.1 for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from procs import answers, fallback_command, free_port, start_group, stop_group

STARTUP_SECONDS = 20


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

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
