"""One SQLite writer at a time across processes, woken the moment the last one is done.

SQLite makes a writer that finds the database locked sleep and retry, backing off to 100 ms
naps; with two workers writing all the time, the unlucky one loses round after round, and some
visitors waited over a second for their thank-you (bench row d: p99 1.1-1.5 s). Writers first
take an flock on a file beside the database: the kernel wakes the next one as soon as it is
released, so SQLite's own lock is free when asked for. The flock only orders writers; SQLite's
locking still guarantees correctness, so when the flock cannot be had (a read-only folder, a
holder stuck past the timeout) the write goes on to SQLite's busy timeout as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

_LOCKS: weakref.WeakSet[WriterLock] = weakref.WeakSet()


class WriterLock:
    """An exclusive flock on the file at `path`, taken around each write transaction."""

    def __init__(self, path: str):
        self.path = path
        self._fds: set[int] = set()  # every file opened here and not yet closed, for a forked child to close
        self._stranded = 0  # helpers still blocked on a lock their caller gave up on
        self._guard = threading.Lock()
        _LOCKS.add(self)

    @contextmanager
    def held(self, seconds: float) -> Iterator[bool]:
        """Hold the lock for the block, waiting up to `seconds` for it; yields whether it is held."""
        fd = self._open()
        locked = fd is not None and self._lock(fd, seconds)
        try:
            yield locked
        finally:
            if locked and fd is not None:
                self._close(fd)  # closing the file releases its lock

    def _open(self) -> int | None:
        # A file of its own per acquisition: flock belongs to the open file, so threads exclude each other too.
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        self._fds.add(fd)
        return fd

    def _close(self, fd: int) -> None:
        self._fds.discard(fd)
        os.close(fd)

    def _lock(self, fd: int, seconds: float) -> bool:
        """Lock `fd` within `seconds`: True, or False with `fd` closed (now, or later by its helper)."""
        try:
            if _try_lock(fd):
                return True
        except OSError:  # a file system without flock: SQLite's own locking alone, as before
            self._close(fd)
            return False
        return self._lock_within(fd, seconds)

    def _lock_within(self, fd: int, seconds: float) -> bool:
        # A blocking flock cannot be timed out, so a helper thread blocks on it while the caller
        # waits up to `seconds`. A caller that gives up leaves the file to the helper, which
        # closes it (releasing the lock if it came late).
        with self._guard:
            if self._stranded:  # a holder is stuck: go straight to SQLite, do not pile up helpers
                self._close(fd)
                return False
        outcome = {"locked": False, "abandoned": False}
        settled = threading.Event()

        def block() -> None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                outcome["locked"] = True
            except OSError:
                pass
            with self._guard:
                if outcome["abandoned"]:
                    self._stranded -= 1
                    self._close(fd)
                settled.set()

        try:
            threading.Thread(target=block, name="fallback-writer-lock", daemon=True).start()
        except RuntimeError:  # no thread to spare: go on to SQLite
            self._close(fd)
            return False
        try:
            settled.wait(seconds)
        except BaseException:  # interrupted (Ctrl-C in the CLI): never leave the lock held behind us
            if self._settle(fd, outcome, settled):
                self._close(fd)
            raise
        return self._settle(fd, outcome, settled)

    def _settle(self, fd: int, outcome: dict, settled: threading.Event) -> bool:
        """After the wait: whether the lock is ours; if not, `fd` is closed now or left to its helper."""
        with self._guard:
            if settled.is_set():
                if not outcome["locked"]:
                    self._close(fd)
                return outcome["locked"]
            outcome["abandoned"] = True
            self._stranded += 1
            return False

    def _forget_parent_files(self) -> None:
        # In a forked child (a gunicorn worker): the parent's threads are not here, and the files
        # they had open would keep the parent's lock held for as long as this process lives.
        for fd in list(self._fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds, self._stranded, self._guard = set(), 0, threading.Lock()


def _try_lock(fd: int) -> bool:
    """Take the lock if it is free; False if another holds it, OSError if the file system has no flock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _after_fork_in_child() -> None:
    for lock in list(_LOCKS):
        lock._forget_parent_files()


os.register_at_fork(after_in_child=_after_fork_in_child)
