"""Group commit: the submissions of many request threads share one transaction, hence one fsync.

Each request thread hands its submission over and waits; a writer thread takes whatever is
waiting, applies each submission in a savepoint of one transaction, commits, and only then
wakes the waiting threads. A visitor is thanked only after the commit that holds their lead.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from fallback.storage.base import StorageError

log = logging.getLogger("fallback.storage")

MAX_BATCH = 64
WAIT_SECONDS = 30.0


@dataclasses.dataclass
class _Pending:
    work: tuple
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    result: object = None
    error: StorageError | None = None


class GroupCommit:
    """Runs `apply(conn, *work)` for many callers in one transaction opened by `write()`."""

    def __init__(self, write: Callable, apply: Callable):
        self._write = write
        self._apply = apply
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def run(self, *work: object) -> Any:
        """Apply `work` in the next committed batch; its result, or the StorageError that stopped it."""
        pending = _Pending(work)
        self._ensure_writer()
        self._queue.put(pending)
        if not pending.done.wait(WAIT_SECONDS):
            raise StorageError(f"the database did not commit within {WAIT_SECONDS:g} s")
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _ensure_writer(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._start_lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._loop, name="fallback-group-commit", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            with self._write() as conn:
                for pending in batch:
                    # A savepoint each: one submission's failure undoes only that submission.
                    conn.execute("SAVEPOINT submission")
                    try:
                        pending.result = self._apply(conn, *pending.work)
                    except Exception as error:  # noqa: BLE001 - handed to the waiting caller
                        conn.execute("ROLLBACK TO SAVEPOINT submission")
                        pending.error = StorageError(f"the database write failed: {error}")
                    conn.execute("RELEASE SAVEPOINT submission")
        except Exception as error:  # noqa: BLE001 - nothing of the batch was committed
            failure = error if isinstance(error, StorageError) else StorageError(f"the database write failed: {error}")
            log.error("a batch of %d submissions was not committed: %s", len(batch), failure)
            for pending in batch:
                pending.result, pending.error = None, failure
        for pending in batch:
            pending.done.set()
