"""Lead digests: how many genuine leads came in during a period, queued as one message once per period.

The period is claimed by a compare-and-set on one `meta` row (the end of the latest period digested), in the
transaction that counts its leads and queues its message: two processes, or two instances on PostgreSQL, that
reach the same period at once queue one message between them, and a period is never counted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fallback.core.clock import iso, parse_iso
from fallback.storage.base import Database
from fallback.storage.leads import GENUINE
from fallback.storage.outbox import NewMessage, add_messages

DIGESTED_UNTIL = "lead_digest_until"
_PREVIOUS = "SELECT value FROM meta WHERE key = ?"
# Wins only over an earlier end: the loser of a race (the row locked, then re-read on PostgreSQL; writers queued on
# SQLite) updates nothing and returns no row.
_CLAIM = (
    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value "
    "WHERE meta.value < excluded.value RETURNING value"
)
# `updated_at` is indexed and never earlier than `created_at`: the index narrows the count to the leads touched since.
_NEW_LEADS = (
    "SELECT COUNT(*) FROM leads WHERE updated_at >= :start AND created_at >= :start AND created_at < :end "
    f"AND {GENUINE}"
)

# What the caller makes of a period's count: the message to queue, from the count and the period's bounds.
Build = Callable[[int, datetime, datetime], NewMessage]


class DigestStore:
    """The periods digested, shared by every process on the database."""

    def __init__(self, db: Database):
        self.db = db

    def queue(self, start: datetime, end: datetime, build: Build) -> int | None:
        """Claim the period [`start`, `end`), count the genuine leads (no spam, no drill) first sent within it, and
        queue `build(count, start, end)` when there is at least one; the count, or None when the period (or a later
        one) was claimed already. A period overlapping one digested under a longer setting starts where that ended."""
        with self.db.write() as conn:
            previous = conn.execute(_PREVIOUS, (DIGESTED_UNTIL,)).fetchall()
            before = parse_iso(previous[0][0]) if previous else None
            if not conn.execute(_CLAIM, (DIGESTED_UNTIL, iso(end))).fetchall():
                return None
            start = max(start, before) if before is not None else start
            count = int(conn.execute(_NEW_LEADS, {"start": iso(start), "end": iso(end)}).fetchall()[0][0])
            if count:
                add_messages(conn, [build(count, start, end)], iso(self.db.clock()))
        return count
