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

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class WriterLock:
    """An exclusive flock on the file at `path`, taken around each write transaction."""

    def __init__(self, path: str):
        self.path = path
        self._stranded = 0  # helpers still blocked on a lock their caller gave up on
        self._guard = threading.Lock()

    @contextmanager
    def held(self, seconds: float) -> Iterator[bool]:
        """Hold the lock for the block, waiting up to `seconds` for it; yields whether it is held."""
        try:
            # A file of its own per acquisition: flock belongs to the open file, so threads exclude each other too.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            yield False
            return
        try:
            locked = _try_lock(fd) or self._lock_within(fd, seconds)
        except OSError:  # a file system without flock: SQLite's own locking alone, as before
            os.close(fd)
            locked = False
        try:
            yield locked
        finally:
            if locked:
                os.close(fd)  # closing the file releases its lock

    def _lock_within(self, fd: int, seconds: float) -> bool:
        # A blocking flock cannot be timed out, so a helper thread blocks on it while the caller
        # waits up to `seconds`. A caller that gives up leaves the file to the helper, which
        # closes it (releasing the lock if it came late).
        with self._guard:
            if self._stranded:  # a holder is stuck: go straight to SQLite, do not pile up helpers
                os.close(fd)
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
                    os.close(fd)
                settled.set()

        try:
            threading.Thread(target=block, name="fallback-writer-lock", daemon=True).start()
        except RuntimeError:  # no thread to spare: go on to SQLite
            os.close(fd)
            return False
        settled.wait(seconds)
        with self._guard:
            if settled.is_set():
                if not outcome["locked"]:
                    os.close(fd)
                return outcome["locked"]
            outcome["abandoned"] = True
            self._stranded += 1
        return False


def _try_lock(fd: int) -> bool:
    """Take the lock if it is free; False if another holds it, OSError if the file system has no flock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
