"""Storage: the only package that runs SQL. One `Storage` object over leads, the flag, the checker."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ..state import utcnow
from .base import StorageError
from .checker import CheckerStore, SessionLockedCheckerStore
from .flag import FlagStore
from .leads import LEAD_COLUMNS, LeadStore, NewLead, Submission, email_key
from .limits import LimitStore, RateCheck
from .postgres import PostgresDatabase
from .schema import MIGRATIONS
from .sqlite import SQLiteDatabase

__all__ = [
    "LEAD_COLUMNS", "MIGRATIONS", "NewLead", "PostgresStorage", "RateCheck", "Storage", "StorageError", "Submission",
    "email_key", "open_storage",
]


class Storage(LeadStore, FlagStore, CheckerStore, LimitStore, SQLiteDatabase):
    """The SQLite backend: one file, one machine."""


class PostgresStorage(LeadStore, FlagStore, SessionLockedCheckerStore, LimitStore, PostgresDatabase):
    """The PostgreSQL backend: several instances sharing one database."""


def open_storage(database: str, clock: Callable[[], datetime] = utcnow, threads: int = 8) -> Storage:
    """Open the database named by FALLBACK_DATABASE for `threads` request threads; bring its schema up to date."""
    if database.startswith(("postgresql://", "postgres://")):
        storage = PostgresStorage(database, clock, threads)
    else:
        storage = Storage(database, clock)
    storage.migrate()
    return storage
