"""tests/procs.py: a group is stopped whole, within bounds, and never once its leader is reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from procs import exited, free_port, listening, start_group, stop_group

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

# A leader that leaves a child in its group: `sleep` outlives it unless the group is swept.
LEAVES_A_CHILD = "sleep 60 & echo $! > child.pid; exit 0"
IGNORES_TERM = "trap '' TERM; sleep 60 & echo $! > child.pid; wait"


def group(script: str, cwd) -> tuple[subprocess.Popen, int]:
    """`sh -c script` in a group of its own, and the pid of the child it starts."""
    process = subprocess.Popen(["sh", "-c", script], cwd=cwd, start_new_session=True)
    deadline = time.monotonic() + 10
    while not (cwd / "child.pid").exists() or not (cwd / "child.pid").read_text().strip():
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.02)
    return process, int((cwd / "child.pid").read_text())


def gone(pid: int, seconds: float = 3) -> bool:
    """Whether `pid` dies within `seconds` (a signal is delivered after kill() returns): absent, or a zombie
    waiting for a parent that is not us."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def test_a_child_left_in_the_group_is_swept(tmp_path):
    process, child = group(LEAVES_A_CHILD, tmp_path)
    while not exited(process.pid):
        time.sleep(0.02)
    stop_group(process)
    assert process.returncode == 0 and gone(child)


def test_a_leader_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    process, child = group(IGNORES_TERM, tmp_path)
    started = time.monotonic()
    stop_group(process, grace=0.5)
    assert process.returncode == -signal.SIGKILL and gone(child)
    assert time.monotonic() - started < 5


def test_a_reaped_process_is_left_alone(tmp_path, monkeypatch):
    process, child = group(LEAVES_A_CHILD, tmp_path)
    process.wait(timeout=10)  # reaped: its number may be a stranger's group now
    sent = []
    monkeypatch.setattr(os, "killpg", lambda *args: sent.append(args))
    monkeypatch.setattr(os, "kill", lambda *args: sent.append(args))
    stop_group(process)
    monkeypatch.undo()
    assert sent == []
    os.kill(child, signal.SIGKILL)


def test_a_process_without_a_group_of_its_own_is_signalled_alone(monkeypatch):
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    groups = []
    monkeypatch.setattr(os, "killpg", lambda *args: groups.append(args))
    stop_group(process)
    assert groups == [] and process.returncode == -signal.SIGTERM


def test_a_server_that_never_listens_is_stopped_and_reported(tmp_path):
    port = free_port()
    with pytest.raises(RuntimeError, match="did not answer within 0.5 s"):
        start_group(
            ["sh", "-c", "echo starting; sleep 60"],
            dict(os.environ),
            tmp_path,
            tmp_path / "log",
            listening(port),
            name="mute",
            seconds=0.5,
        )
    assert "starting" in (tmp_path / "log").read_text()
