"""The events: what happened that the outside hears of (a flip, a forced mode, a new lead), recorded once.

An event is written in the transaction of its cause, with its facts; nothing about who hears of it. The outbox's
messages (a notification, one webhook per receiver) are made from it afterwards by `dispatch`, which the senders
run with the routing of their settings (outbound.outbox): so no process that causes an event needs to know where
it goes, and a process without FALLBACK_WEBHOOK_URLS (a `fallback mode` run elsewhere) loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fallback.core.clock import iso
from fallback.storage.base import Connection, Database
from fallback.storage.outbox import NewMessage, add_messages
from fallback.storage.records import from_row

EVENT_TYPES = (
    "incident.opened",
    "incident.closed",
    "mode.changed",
    "lead.created",
    "admission.started",
    "admission.stopped",
)
# Taken first by a dispatch, so that two dispatchers (two instances on PostgreSQL) queue one after the other and
# messages are numbered in the order of their events: the order each webhook receiver gets them in.
_DISPATCHER_TURN = (
    "INSERT INTO meta (key, value) VALUES ('events_dispatched', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


@dataclass(frozen=True)
class Event:
    """One recorded event: its time (stored ISO text), its type (EVENT_TYPES) and its facts."""

    id: int
    at: str
    type: str
    data: dict[str, Any]
    lead_id: int | None = None


def record_event(conn: Connection, at: str, kind: str, data: dict[str, Any], lead_id: int | None = None) -> None:
    """Record one event inside the caller's transaction; with `lead_id`, erasing that lead erases the event."""
    assert kind in EVENT_TYPES, kind
    conn.execute(
        "INSERT INTO events (at, type, data, lead_id) VALUES (?, ?, ?, ?)",
        (at, kind, json.dumps(data, separators=(",", ":")), lead_id),
    )


def _event(row: Any) -> Event:
    return from_row(Event, row, data=json.loads(row["data"]))


class EventStore:
    """The events, recorded by the flag's and the leads' stores, and dispatched into the outbox once."""

    def __init__(self, db: Database):
        self.db = db

    def dispatch(self, route: Callable[[Event], Sequence[NewMessage]], limit: int = 100) -> int:
        """Queue the messages `route` makes of each event not dispatched yet, oldest first, in one transaction
        with marking it dispatched (so each event's messages are queued once, or not at all); how many events."""
        if not self.db.read("SELECT 1 FROM events WHERE dispatched_at IS NULL LIMIT 1"):
            return 0  # the usual round: a read, no write
        now = iso(self.db.clock())
        with self.db.write() as conn:
            conn.execute(_DISPATCHER_TURN, (now,))
            rows = conn.execute(
                "SELECT * FROM events WHERE dispatched_at IS NULL ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
            for row in rows:
                event = _event(row)
                add_messages(conn, route(event), event.at)
                conn.execute("UPDATE events SET dispatched_at = ? WHERE id = ?", (now, event.id))
        return len(rows)

    def recent(self, limit: int = 20) -> list[Event]:
        """The latest events, newest first."""
        return [_event(row) for row in self.db.read("SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,))]
