"""The two backends' Storage objects: the same stores over SQLite or PostgreSQL, each with its own checker store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fallback.core.clock import utcnow
from fallback.storage.checker import CheckerStore
from fallback.storage.postgres import PostgresDatabase
from fallback.storage.postgres_checker import SessionLockedCheckerStore
from fallback.storage.sqlite import SQLiteDatabase
from fallback.storage.stores import Stores


class SQLiteStorage(Stores):
    """The SQLite backend: one file, one machine; the checker holds a lease in the checker row."""

    def __init__(self, path: str, clock: Callable[[], datetime] = utcnow):
        db = SQLiteDatabase(path, clock)
        super().__init__(db, CheckerStore(db))
        self.db: SQLiteDatabase = db


class PostgresStorage(Stores):
    """The PostgreSQL backend: several instances sharing one database; the checker holds an advisory lock."""

    def __init__(self, path: str, clock: Callable[[], datetime] = utcnow, threads: int = 8):
        db = PostgresDatabase(path, clock, threads)
        super().__init__(db, SessionLockedCheckerStore(db))
        self.db: PostgresDatabase = db
