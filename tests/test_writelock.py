"""The writer lock that queues SQLite writers of every process (fallback/storage/writelock.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from fallback.storage import NewLead, open_storage
from fallback.storage.writelock import WriterLock


@pytest.fixture
def lock(tmp_path):
    return WriterLock(str(tmp_path / "db-writer.lock"))


def files_open_on(path: str) -> int:
    """How many of this process's file descriptors are open on `path` (others come and go with the GC)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == path
        except OSError:
            pass  # closed since the listing
    return count


def hold_in_thread(lock: WriterLock, release: threading.Event) -> None:
    """Take the lock in a thread of its own and keep it until `release` is set; returns once it is held."""
    holding = threading.Event()

    def hold():
        with lock.held(5) as locked:
            if locked:
                holding.set()
                release.wait(10)

    threading.Thread(target=hold, daemon=True).start()
    assert holding.wait(5), "the lock could not be taken"


def eventually_locked(lock: WriterLock) -> bool:
    """Whether the lock can be had within 5 s (a helper stranded by an earlier timeout lets it go first)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with lock.held(0.1) as locked:
            if locked:
                return True
        time.sleep(0.01)
    return False


def test_a_second_writer_waits_until_the_first_is_done(lock):
    release, order = threading.Event(), []
    hold_in_thread(lock, release)

    def second():
        with lock.held(10) as locked:
            order.append(("second", locked))

    waiter = threading.Thread(target=second)
    waiter.start()
    waiter.join(0.3)
    assert order == []  # still waiting for the first
    order.append(("first done", True))
    release.set()
    waiter.join(10)
    assert order == [("first done", True), ("second", True)]


def test_a_writer_that_waited_too_long_goes_on_without_the_lock_and_leaks_nothing(lock):
    release = threading.Event()
    hold_in_thread(lock, release)
    with lock.held(0.1) as locked:
        assert not locked
    with lock.held(10) as locked:  # a holder is known stuck: no second helper, no wait
        assert not locked
    release.set()
    assert eventually_locked(lock)  # the stranded helper gets the lock late, then lets it go
    assert files_open_on(lock.path) == 0  # the holder's, the helper's and ours are all closed


def test_the_lock_excludes_another_process(lock):
    script = (
        "import fcntl, os, sys\n"
        f"fd = os.open({lock.path!r}, os.O_RDWR | os.O_CREAT)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\nsys.stdin.readline()"
    )
    # As a context manager, so that its pipes are closed here rather than whenever it is collected.
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout.readline().strip() == "held"
            with lock.held(0.2) as locked:
                assert not locked
        finally:
            holder.kill()  # its lock goes with it
    assert eventually_locked(lock)


def test_without_a_writable_folder_writes_go_straight_to_sqlite(tmp_path):
    lock = WriterLock(str(tmp_path / "missing" / "db-writer.lock"))
    with lock.held(5) as locked:
        assert not locked


def test_on_a_file_system_without_flock_writes_go_straight_to_sqlite(lock, monkeypatch):
    import errno

    import fallback.storage.writelock as writelock

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(writelock.fcntl, "flock", no_locks)
    with lock.held(5) as locked:
        assert not locked
    assert files_open_on(lock.path) == 0


def test_sqlite_writes_wait_for_the_lock_beside_the_database(tmp_path):
    storage = open_storage(str(tmp_path / "fallback.db"))  # a new file: the schema is written under the lock
    lock_file = tmp_path / "fallback.db-writer.lock"
    assert lock_file.exists()
    release = threading.Event()
    hold_in_thread(WriterLock(str(lock_file)), release)
    saved = []
    writer = threading.Thread(target=lambda: saved.append(storage.leads.save(NewLead(email="ann@example.org"))))
    writer.start()
    writer.join(0.3)
    assert saved == [] and storage.leads.count().leads == 0  # queued behind the holder
    release.set()
    writer.join(10)
    assert len(saved) == 1 and storage.leads.count().leads == 1


def test_a_forked_child_does_not_keep_its_parents_lock(lock):
    with lock.held(5) as locked:
        assert locked
        child = os.fork()  # as gunicorn forks workers: the child gets copies of the open files
        if child == 0:
            time.sleep(5)
            os._exit(0)
    try:
        with lock.held(1) as locked_again:  # free once the parent let go, the child alive or not
            assert locked_again
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
