"""Storage: the only package that runs SQL. One `Storage` object: stores composed over one database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from fallback.core.clock import utcnow
from fallback.storage.admission import AdmissionStore
from fallback.storage.backends import PostgresStorage, SQLiteStorage
from fallback.storage.base import Database, StorageError
from fallback.storage.checker import CheckerStore
from fallback.storage.digests import DigestStore
from fallback.storage.events import Event, EventStore
from fallback.storage.flag import FlagStore
from fallback.storage.followups import FollowupStore, Recipient
from fallback.storage.leads import LeadStore, Submission, email_key
from fallback.storage.limits import LimitStore, RateCheck
from fallback.storage.outbox import Message, NewMessage, OutboxStore
from fallback.storage.records import LEAD_COLUMNS, NewLead
from fallback.storage.schema import MIGRATIONS
from fallback.storage.spam import SpamStore
from fallback.storage.verdicts import Verdict, VerdictStore

__all__ = [
    "LEAD_COLUMNS",
    "MIGRATIONS",
    "Event",
    "Message",
    "NewLead",
    "NewMessage",
    "PostgresStorage",
    "RateCheck",
    "Recipient",
    "SQLiteStorage",
    "Storage",
    "StorageError",
    "Submission",
    "Verdict",
    "email_key",
    "open_storage",
]


class Storage(Protocol):
    """What the app uses of a database, whichever the backend (SQLiteStorage, PostgresStorage)."""

    @property
    def db(self) -> Database:
        """The connection layer the stores run their SQL through: for copying between databases, and tests."""
        ...

    @property
    def clock(self) -> Callable[[], datetime]:
        """The clock every store reads."""
        ...

    leads: LeadStore
    spam: SpamStore  # suspected spam, listed and rescued by an admin
    flag: FlagStore
    checker: CheckerStore  # the checker's lease, heartbeat and probes; the lease is the backend's own
    events: EventStore  # flips, modes and new leads, recorded once; dispatched into the outbox by outbound.outbox
    outbox: OutboxStore  # every outgoing message (notification, follow-up mail, webhook), sent by outbound/
    digests: DigestStore  # which periods' lead digests were queued: once a period, across every instance
    limits: LimitStore
    followups: FollowupStore  # which leads get the "we're back" mail, who it goes to, unsubscribing
    verdicts: VerdictStore  # the vantage points' latest verdicts, counted by the checker under FALLBACK_QUORUM
    admission: AdmissionStore  # the shared admission gate (FALLBACK_ADMIT_RATE) and the rate's history

    def migrate(self) -> int:
        """Create or bring the schema up to date; returns the schema version."""
        ...

    def check_writable(self) -> None:
        """Raise StorageError unless a write transaction can be committed now."""
        ...

    def secret_key(self) -> tuple[str, bool]:
        """The stored secret key, generating one on first use; returns (key, generated now)."""
        ...

    def session_generation(self) -> int:
        """The admin sessions' generation: a session opened under an earlier one has ended."""
        ...

    def end_sessions(self) -> int:
        """Bump the admin sessions' generation, ending every session of every instance; returns the new one."""
        ...

    def close(self) -> None:
        """Release every connection this object holds; it is unusable afterwards."""
        ...


def open_storage(database: str, clock: Callable[[], datetime] = utcnow, threads: int = 8) -> Storage:
    """Open the database named by FALLBACK_DATABASE for `threads` request threads; bring its schema up to date."""
    storage: Storage
    if database.startswith(("postgresql://", "postgres://")):
        storage = PostgresStorage(database, clock, threads)
    else:
        storage = SQLiteStorage(database, clock)
    storage.migrate()
    return storage
