"""The stores composed over one database: what both backends' Storage objects are made of."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

from fallback.core.clock import iso
from fallback.storage.admission import AdmissionStore
from fallback.storage.base import Database
from fallback.storage.checker import CheckerStore
from fallback.storage.digests import DigestStore
from fallback.storage.events import EventStore
from fallback.storage.flag import FlagStore
from fallback.storage.followups import FollowupStore
from fallback.storage.leads import LeadStore
from fallback.storage.limits import LimitStore
from fallback.storage.outbox import OutboxStore
from fallback.storage.spam import SpamStore
from fallback.storage.verdicts import VerdictStore


class Stores:
    """One database and the stores over it; a backend supplies the database and its checker store."""

    def __init__(self, db: Database, checker: CheckerStore):
        self.db = db
        self.leads = LeadStore(db)
        self.spam = SpamStore(db)
        self.flag = FlagStore(db)
        self.checker = checker
        self.events = EventStore(db)
        self.outbox = OutboxStore(db)
        self.digests = DigestStore(db)
        self.limits = LimitStore(db)
        self.followups = FollowupStore(db)
        self.verdicts = VerdictStore(db)
        self.admission = AdmissionStore(db)

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

    def session_generation(self) -> int:
        """The admin sessions' generation: a session opened under an earlier one has ended."""
        rows = self.db.read("SELECT value FROM meta WHERE key = 'session_generation'")
        return int(rows[0][0]) if rows else 0

    def end_sessions(self) -> int:
        """Bump the admin sessions' generation, ending every session of every instance; returns the new one."""
        with self.db.write() as conn:
            return int(
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('session_generation', '1') ON CONFLICT (key) DO UPDATE "
                    "SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT) RETURNING value"
                ).fetchall()[0][0]
            )

    def close(self) -> None:
        """Release every connection this object holds (the checker's lock session too); it is unusable afterwards."""
        self.checker.close()
        self.db.close()
