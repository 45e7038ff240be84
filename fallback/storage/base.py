"""What both backends share: the error type, and the methods written once over `write` and `read`."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime

from ..state import iso, utcnow

BUSY_TIMEOUT_SECONDS = 10.0


class StorageError(RuntimeError):
    """The database cannot be reached or written."""


class Database:
    """The interface every store is written against; a backend supplies the connection methods."""

    # Appended to a SELECT whose rows a transaction is about to claim: SQLite's writers are
    # serialised already, PostgreSQL needs the rows locked (and skipped by other claimers).
    lock_rows = ""

    def __init__(self, path: str, clock: Callable[[], datetime] = utcnow):
        self.path = path
        self.clock = clock

    def write(self) -> AbstractContextManager:
        """A transaction that commits on exit, durably; its connection has `execute` and `executemany`."""
        raise NotImplementedError

    def read(self, sql: str, params: tuple | dict = ()) -> list:
        """The rows of one query (rows answer `row["name"]` and `row[0]`)."""
        raise NotImplementedError

    def stream(self, sql: str, params: tuple | list | dict, batch: int) -> Iterator[dict]:
        """The rows of a long query, a batch at a time, without holding them all in memory."""
        raise NotImplementedError

    def compact(self) -> None:
        """Reclaim the space of erased rows, so that nothing erased can be read back from the files."""
        raise NotImplementedError

    def migrate(self) -> int:
        """Create or bring the schema up to date; returns the schema version."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of connections."""

    def _hold_lock(self, key: int, holder: str) -> bool:
        """Whether `holder` holds the session lock `key`, taking it if free (PostgreSQL's advisory locks)."""
        raise NotImplementedError

    def _end_session(self, holder: str) -> None:
        """End `holder`'s lock session, and with it every lock it held."""
        raise NotImplementedError

    def check_writable(self) -> None:
        """Raise StorageError unless a write transaction can be committed now."""
        with self.write() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('last_write_check', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (iso(self.clock()),),
            )

    def secret_key(self) -> tuple[str, bool]:
        """The stored secret key, generating one on first use; returns (key, generated now)."""
        candidate = secrets.token_urlsafe(32)
        with self.write() as conn:
            inserted = conn.execute(
                "INSERT INTO meta (key, value) VALUES ('secret_key', ?) ON CONFLICT (key) DO NOTHING", (candidate,)
            ).rowcount
            key = conn.execute("SELECT value FROM meta WHERE key = 'secret_key'").fetchall()[0][0]
        return key, bool(inserted)
