"""The stores composed over one database: what both backends' Storage objects are made of."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

from ..state import iso
from .base import Database
from .checker import CheckerStore
from .events import EventStore
from .flag import FlagStore
from .leads import LeadStore
from .limits import LimitStore


class Stores:
    """One database and the stores over it; a backend supplies the database and its checker store."""

    def __init__(self, db: Database, checker: CheckerStore):
        self.db = db
        self.leads = LeadStore(db)
        self.flag = FlagStore(db)
        self.checker = checker
        self.events = EventStore(db)
        self.limits = LimitStore(db)

    @property
    def clock(self) -> Callable[[], datetime]:
        """The clock every store reads (the database's: a test sets `storage.db.clock`)."""
        return self.db.clock

    def migrate(self) -> int:
        """Create or bring the schema up to date; returns the schema version."""
        return self.db.migrate()

    def check_writable(self) -> None:
        """Raise StorageError unless a write transaction can be committed now."""
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('last_write_check', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (iso(self.clock()),),
            )

    def secret_key(self) -> tuple[str, bool]:
        """The stored secret key, generating one on first use; returns (key, generated now)."""
        candidate = secrets.token_urlsafe(32)
        with self.db.write() as conn:
            inserted = conn.execute(
                "INSERT INTO meta (key, value) VALUES ('secret_key', ?) ON CONFLICT (key) DO NOTHING", (candidate,)
            ).rowcount
            key = conn.execute("SELECT value FROM meta WHERE key = 'secret_key'").fetchall()[0][0]
        return key, bool(inserted)

    def close(self) -> None:
        """Release every connection this object holds (the checker's lock session too); it is unusable afterwards."""
        self.checker.close()
        self.db.close()
