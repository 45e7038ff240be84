"""Process helpers shared by the tests and the bench: a free port, a server started as a process group of
its own and awaited (bounded), and that group stopped the safe way.

Why here, in tests/: the tests then need nothing outside their own folder (pytest puts tests/ on
sys.path, as it has no __init__.py, and the sdist's tests run as they are). The bench already
runs its PostgreSQL rows on tests/pg.py; bench/load.py appends tests/ to sys.path, last, so that
no test helper can shadow a module the bench imports, and imports this module as `procs`.
Neither folder is a package, and neither is installed.

The rule for signals: a group is signalled only while its leader, our child, is not yet reaped.
Until then its pid, and so the group id, cannot be handed to another process; once it is reaped,
the same number may name a stranger's group. So nothing here reaps a server (no `poll()`) before
its group has been swept with SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

HOST = "127.0.0.1"
STARTUP_SECONDS = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def fallback_command() -> list[str]:
    """The installed `fallback` console script next to this Python, else `python -m fallback`."""
    script = shutil.which("fallback", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "fallback"]


def log_tail(log: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file, or nothing when it cannot be read."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def exited(pid: int) -> bool:
    """Whether our child `pid` has exited, without reaping it (so its group id stays ours)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True  # not our child, or already reaped


def answers(url: str, ok: bool = False) -> Callable[[], bool]:
    """A readiness check: `url` answers at all (or, with `ok`, with a 2xx/3xx), proxy variables ignored."""

    def check() -> bool:
        with requests.Session() as session:
            session.trust_env = False  # loopback only: never through a proxy from the environment
            try:
                response = session.get(url, timeout=1, allow_redirects=False)
            except requests.RequestException:
                return False
        return response.ok or not ok

    return check


def listening(port: int) -> Callable[[], bool]:
    """A readiness check: something accepts TCP connections on 127.0.0.1:`port`."""

    def check() -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            return False

    return check


def wait_ready(
    process: subprocess.Popen,
    ready: Callable[[], bool],
    name: str,
    describe: Callable[[], str],
    seconds: float = STARTUP_SECONDS,
) -> None:
    """Return once `ready()` holds; if `process` exits first or `seconds` pass, stop its group and raise
    RuntimeError with `describe()` (its log)."""
    deadline = time.monotonic() + seconds
    while True:
        if exited(process.pid):
            stop_group(process)  # sweeps what it left in its group, then reaps it
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{describe()}")
        if ready():
            return
        if time.monotonic() > deadline:
            stop_group(process)
            raise RuntimeError(f"{name} did not answer within {seconds:g} s:\n{describe()}")
        time.sleep(0.1)


def interruptible_child() -> None:
    """In a child about to exec: take SIGINT as a terminal's Ctrl-C does. A runner started in the background by a
    shell (`nohup pytest &`, `(pytest &)`) ignores SIGINT, and a child would inherit that and shrug off the SIGINT
    a test sends it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn_group(command: list[str], env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    """Start `command` in a session (so a process group) of its own, its output appended to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=interruptible_child,
        )


def start_group(
    command: list[str],
    env: dict,
    cwd: Path,
    log: Path,
    ready: Callable[[], bool],
    name: str | None = None,
    seconds: float = STARTUP_SECONDS,
) -> subprocess.Popen:
    """spawn_group, then wait until `ready()` (bounded): the process, or RuntimeError with the log's tail."""
    process = spawn_group(command, env, cwd, log)
    wait_ready(process, ready, name or Path(command[0]).name, lambda: log_tail(log), seconds)
    return process


def stop_group(process: subprocess.Popen | None, sig: int = signal.SIGTERM, grace: float = 15) -> None:
    """Stop a server started in a group of its own: `sig`, a bounded wait, SIGKILL to the group, then reap.

    `sig` goes to the leader alone: a master (gunicorn's, nginx's) forwards it to its workers, and a
    second copy sent straight to a worker that is already exiting kills it by the default action
    (gunicorn then logs "Worker (pid:N) was sent SIGTERM!", which the bench counts as a problem).
    SIGKILL, which no master can forward, goes to the whole group. Whether the leader exits within
    `grace` or not, the group is then swept with SIGKILL, still before the leader is reaped, so no
    worker outlives it and the group id is still ours when signalled. A process that does not lead
    a group of its own is signalled alone; one already reaped is left alone.
    """
    if process is None or process.returncode is not None:
        return  # never started, or reaped: its pid may now be a stranger's
    try:
        own_group = os.getpgid(process.pid) == process.pid
    except ProcessLookupError:
        own_group = False
    sweep = os.killpg if own_group else os.kill
    with contextlib.suppress(ProcessLookupError):
        (sweep if sig == signal.SIGKILL else os.kill)(process.pid, sig)
    deadline = time.monotonic() + grace
    while not exited(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        sweep(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)  # a zombie or a killed process: returns at once
