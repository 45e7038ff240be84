"""The SQLite backend's connections: one per thread, WAL, a busy timeout, durable commits."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from fallback.core.clock import utcnow
from fallback.core.paths import owner_only
from fallback.storage.base import BUSY_TIMEOUT_SECONDS, READ_SCHEMA_VERSION, WRITE_SCHEMA_VERSION, Params, StorageError
from fallback.storage.schema import MIGRATIONS
from fallback.storage.writelock import WriterLock

# How long an erasure waits for readers of an older snapshot (an export, a backup) to let the WAL go.
ERASE_WAIT_SECONDS = 5.0


class SQLiteDatabase:
    """The SQLite connection layer the stores share: one connection per thread, opened on first use."""

    lock_rows = ""  # writers are serialised already: nothing to lock
    wait_for_writers = ""  # one writer at a time: ids are committed in the order they are drawn

    def __init__(self, path: str, clock: Callable[[], datetime] = utcnow):
        self.path = path
        self.clock = clock
        self._local = threading.local()
        # Every thread's connection (request threads, the checker, the group-commit writer), for
        # operations that concern them all, and for close().
        self.thread_connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        self.writer_lock = WriterLock(path + "-writer.lock")

    # -- connections -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # Before SQLite creates the file with the umask's mode (0644 as a rule); its -wal and -shm
        # files then take the main file's mode, and are tightened below if an older one left them open.
        owner_only(self.path, create=True)
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a lead a visitor was thanked for survives a power cut, not only a crash.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
            # Deleted content is overwritten with zeros, in the pages and so in the WAL frames that carry them.
            conn.execute("PRAGMA secure_delete=ON")
        except sqlite3.Error as error:
            raise StorageError(f"cannot open the database {self.path}: {error}") from error
        for suffix in ("-wal", "-shm"):
            owner_only(self.path + suffix)
        conn.row_factory = sqlite3.Row
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        if self._closed:
            raise StorageError(f"the database {self.path} was closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with self._connections_lock:
                if self._closed:
                    raise StorageError(f"the database {self.path} was closed")
                conn = self._local.conn = self._connect()
                self.thread_connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection; this object is unusable afterwards."""
        with self._connections_lock:
            self._closed = True
            connections, self.thread_connections = self.thread_connections, []
        for conn in connections:
            conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A transaction that commits on exit, durably; writers of every process queue for it (writelock.py)."""
        conn = self.conn
        with self.writer_lock.held(BUSY_TIMEOUT_SECONDS):  # writers queue here, not in SQLite's busy naps
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise StorageError(f"the database is not writable: {error}") from error
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    raise StorageError(f"the database write failed: {error}") from error
                raise

    def read(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """The rows of one query, on this thread's connection."""
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise StorageError(f"the database read failed: {error}") from error

    def stream(self, sql: str, params: Params, batch: int) -> Iterator[dict[str, Any]]:
        """The rows of a long query, `batch` at a time, as dicts."""
        # A connection of its own, so a long export never holds a request thread's connection.
        conn = self._connect()
        conn.row_factory = None  # plain tuples zipped into dicts: much cheaper than sqlite3.Row then dict()
        try:
            cursor = conn.execute(sql, params)
            names = [column[0] for column in cursor.description]
            while rows := cursor.fetchmany(batch):
                yield from (dict(zip(names, row)) for row in rows)
        finally:
            conn.close()

    def compact(self) -> None:
        """Leave no copy of erased rows in the file or the write-ahead log; StorageError saying what blocks it."""
        try:
            # Rewrites every page: also clears what was freed before secure_delete was on.
            self.conn.execute("VACUUM")
        except sqlite3.Error as error:
            raise StorageError(f"the database could not be compacted: {error}") from error
        self._truncate_wal()

    def _truncate_wal(self) -> None:
        # The WAL still holds the erased rows' earlier frames until a checkpoint copies every frame into the
        # file and truncates the log. A reader of an older snapshot stops that, and SQLite only says so in
        # the checkpoint's result: (busy, frames in the log, frames checkpointed).
        deadline = time.monotonic() + ERASE_WAIT_SECONDS
        while True:
            try:
                # Short naps in SQLite's busy handler, so that the wait is ours to bound.
                self.conn.execute("PRAGMA busy_timeout=100")
                busy, frames, _ = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as error:
                raise StorageError(f"the write-ahead log could not be checkpointed: {error}") from error
            finally:
                self.conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
            if not busy and frames == 0:
                return
            if time.monotonic() >= deadline:
                raise StorageError(
                    f"copies are still in the write-ahead log {self.path}-wal: another "
                    f"reader (an export being downloaded, a backup, another program) kept a read transaction open "
                    f"for over {ERASE_WAIT_SECONDS:g} s; run the erasure again once it has finished"
                )
            time.sleep(0.05)

    def migrate(self) -> int:
        """Create or bring the schema up to date; returns the schema version."""
        if self.schema_version() == len(MIGRATIONS):
            return len(MIGRATIONS)  # the usual case: no write, and no sqlite-utils to import (a CLI start-up)
        import sqlite_utils

        with self.write() as conn:
            db = sqlite_utils.Database(conn)
            db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
            row = conn.execute(READ_SCHEMA_VERSION).fetchone()
            version = int(row[0]) if row else 0
            for migration in MIGRATIONS[version:]:
                migration(db)
            conn.execute(WRITE_SCHEMA_VERSION, (str(len(MIGRATIONS)),))
        return len(MIGRATIONS)

    def schema_version(self) -> int:
        """How many migrations the database has had (0 for a new file)."""
        try:
            rows = self.conn.execute(READ_SCHEMA_VERSION).fetchall()
        except sqlite3.Error:
            return 0  # no meta table yet, or unreadable: the migration's write then says why
        return int(rows[0][0]) if rows else 0
