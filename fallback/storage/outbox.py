"""The outbox: every outgoing message (a notification, a follow-up mail, a webhook), one row each, one way through.

A message is `pending` until it is `delivered`, given up (`failed`), refused for good by its destination (`gone`,
a webhook's 410), or `skipped` (its destination had answered 410 Gone, or is no longer configured). The senders
(outbound.outbox) claim due messages, send them through their kind's transport and record the answer here; when
to try again is theirs to say (outbound.outbox.Backoff): this store keeps what they decided.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from fallback.core.clock import iso
from fallback.storage.base import Connection, Database
from fallback.storage.limits import RateCheck, count_attempt, give_back_attempt
from fallback.storage.records import StatusCounts, from_row

KINDS = ("notification", "followup", "webhook")
STATUSES = tuple(field.name for field in fields(StatusCounts))
_DUE = "kind = ? AND status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
# A destination that was down is left alone until its hold ends, whatever was queued for it since.
_NOT_HELD = "(destination IS NULL OR destination NOT IN (SELECT url FROM webhook_destinations WHERE held_until > ?))"
# A webhook is posted only while its URL is a destination of the current setting, and not gone.
_UNDELIVERABLE = "destination NOT IN (SELECT url FROM webhook_destinations WHERE gone_at IS NULL)"
_INSERT = (
    "INSERT INTO outbox (kind, topic, destination, message_id, payload, lead_id, created_at, retry_until) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class NewMessage:
    """A message to queue: its kind (KINDS), what it is about (an event type, or `followup`), where it goes (a
    webhook's URL; None when the kind's settings say), its id for the receiver and its body, made once (so every
    retry sends the same bytes), the lead it names (erased with it), and when retrying it ends, if ever."""

    kind: str
    topic: str
    destination: str | None = None
    message_id: str | None = None
    payload: str | None = None
    lead_id: int | None = None
    retry_until: datetime | None = None


@dataclass(frozen=True)
class Message:
    """One row of the outbox, as stored (times as ISO text)."""

    id: int
    kind: str
    topic: str
    destination: str | None
    message_id: str | None
    payload: str | None
    lead_id: int | None
    created_at: str
    status: str
    attempts: int
    next_attempt_at: str | None
    retry_until: str | None
    last_attempt_at: str | None
    last_status: int | None
    last_error: str | None


_COLUMNS = ", ".join(field.name for field in fields(Message))


def _text(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


def _message(row: Any, **changed: Any) -> Message:
    return from_row(Message, row, **changed)


def add_messages(conn: Connection, messages: Iterable[NewMessage], at: str) -> None:
    """Queue `messages`, made at `at` (stored ISO text), inside the caller's transaction, in this order."""
    rows = [
        (m.kind, m.topic, m.destination, m.message_id, m.payload, m.lead_id, at, _text(m.retry_until)) for m in messages
    ]
    if rows:
        conn.executemany(_INSERT, rows)


class OutboxStore:
    """The outgoing messages, shared by every process on the database."""

    def __init__(self, db: Database):
        self.db = db

    def due(self, kind: str) -> bool:
        """Whether a message of `kind` waits to be sent now (a read: the sender claims only then)."""
        return bool(self.db.read(f"SELECT 1 FROM outbox WHERE {_DUE} LIMIT 1", (kind, iso(self.db.clock()))))

    def claim(
        self, kind: str, hold_seconds: float, limit: int = 20, rate: RateCheck | None = None
    ) -> tuple[list[Message], float | None]:
        """The oldest due messages of `kind` (up to `limit`), at most one per destination, each held `hold_seconds`
        for this caller, its try counted; and, when `rate` is spent across every instance, none and the seconds
        to wait.

        One per destination, so that a destination's next message is claimed only once the one before it was
        sent: they arrive in the order they were queued. A webhook of a gone or removed receiver is skipped here.
        """
        now = self.db.clock()
        claimed: list[Message] = []
        with self.db.write() as conn:
            if kind == "webhook":
                conn.execute(
                    "UPDATE outbox SET status = 'skipped', last_error = CASE WHEN destination IN "
                    "(SELECT url FROM webhook_destinations WHERE gone_at IS NOT NULL) THEN "
                    "'not sent: this receiver answered 410 Gone; skipped until FALLBACK_WEBHOOK_URLS changes' "
                    f"ELSE 'not sent: no longer in FALLBACK_WEBHOOK_URLS' END WHERE {_DUE} AND {_UNDELIVERABLE}",
                    (kind, iso(now)),
                )
            # The oldest due message of each destination, and the oldest of those without one; only those are
            # locked: another sender skips them and takes others (PostgreSQL), never a later one of a destination.
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE id IN (SELECT id FROM (SELECT id FROM outbox WHERE {_DUE} "
                "AND destination IS NULL ORDER BY id LIMIT ?) AS undirected UNION SELECT MIN(id) FROM outbox "
                f"WHERE {_DUE} AND destination IS NOT NULL AND {_NOT_HELD} GROUP BY destination) "
                "ORDER BY id LIMIT ?" + self.db.lock_rows,
                (kind, iso(now), limit * 2, kind, iso(now), iso(now), limit),
            ).fetchall()
            if rows and rate is not None:
                wait = count_attempt(conn, rate, now)
                if wait is not None:
                    give_back_attempt(conn, rate, now)
                    return [], wait
            held = iso(now + timedelta(seconds=hold_seconds))
            for row in rows:
                # Guarded: a row another sender claimed meanwhile is no longer due, and is left to it. Counted at
                # the claim: a process killed while sending does not retry the message for ever.
                taken = conn.execute(
                    f"UPDATE outbox SET next_attempt_at = ?, attempts = attempts + 1 WHERE id = ? AND {_DUE}",
                    (held, row["id"], kind, iso(now)),
                ).rowcount
                if taken:
                    claimed.append(_message(row, attempts=row["attempts"] + 1, next_attempt_at=held))
        return claimed, None

    def delivered(self, message: Message, status: int | None = None) -> None:
        """Record a message its destination accepted; a follow-up's is when its lead was mailed (the export's)."""
        now = iso(self.db.clock())
        with self.db.write() as conn:
            conn.execute(
                "UPDATE outbox SET status = 'delivered', last_attempt_at = ?, last_status = ?, last_error = NULL, "
                "next_attempt_at = NULL WHERE id = ?",
                (now, status, message.id),
            )
            if message.kind == "followup":
                conn.execute("UPDATE leads SET notified_at = ? WHERE id = ?", (now, message.lead_id))

    def failed(
        self, message: Message, error: str, status: int | None, retry_at: datetime | None, hold_destination: bool
    ) -> None:
        """Record a failed try: tried again at `retry_at`, or, without it, given up; with `hold_destination` (the
        receiver as a whole is down) its destination's later messages wait as long, so that they stay in order."""
        now = self.db.clock()
        retry_text = _text(retry_at)
        with self.db.write() as conn:
            conn.execute(
                "UPDATE outbox SET status = ?, next_attempt_at = ?, last_attempt_at = ?, last_status = ?, "
                "last_error = ? WHERE id = ?",
                ("pending" if retry_at else "failed", retry_text, iso(now), status, error[:500], message.id),
            )
            if retry_text is not None and hold_destination and message.destination is not None:
                conn.execute(
                    "UPDATE webhook_destinations SET held_until = ? WHERE url = ?", (retry_text, message.destination)
                )

    def gone(self, message: Message, error: str) -> None:
        """Record a 410 Gone: this message is over, and its destination skipped until the setting changes."""
        now = iso(self.db.clock())
        with self.db.write() as conn:
            conn.execute(
                "UPDATE outbox SET status = 'gone', last_attempt_at = ?, last_status = 410, last_error = ?, "
                "next_attempt_at = NULL WHERE id = ?",
                (now, error[:500], message.id),
            )
            conn.execute(
                "UPDATE webhook_destinations SET gone_at = ?, gone_error = ? WHERE url = ?",
                (now, error[:500], message.destination),
            )

    def retry(self, message_id: int, kind: str, until: datetime | None) -> bool:
        """Send one message of `kind` again now, retried until `until` (its receiver's 410 mark lifted, if any);
        False if there is no such message."""
        with self.db.write() as conn:
            rows = conn.execute("SELECT destination FROM outbox WHERE id = ? AND kind = ?", (message_id, kind))
            found = rows.fetchall()
            if not found:
                return False
            conn.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = NULL, retry_until = ? WHERE id = ?",
                (_text(until), message_id),
            )
            # An admin asking again overrides the 410: the receiver may be back.
            conn.execute(
                "UPDATE webhook_destinations SET gone_at = NULL, gone_error = NULL, held_until = NULL WHERE url = ?",
                (found[0][0],),
            )
        return True

    def send_now(self, kind: str) -> int:
        """Make every waiting message of `kind` due at once (the dashboard's button); how many."""
        with self.db.write() as conn:
            return int(
                conn.execute(
                    "UPDATE outbox SET next_attempt_at = NULL WHERE kind = ? AND status = 'pending'", (kind,)
                ).rowcount
            )

    def recent(self, kind: str, limit: int = 20) -> list[Message]:
        """The latest messages of `kind`, newest first."""
        rows = self.db.read(f"SELECT {_COLUMNS} FROM outbox WHERE kind = ? ORDER BY id DESC LIMIT ?", (kind, limit))
        return [_message(row) for row in rows]

    def counts(self, kind: str) -> StatusCounts:
        """How many messages of `kind` are in each status (every status named, zero included)."""
        counted = dict.fromkeys(STATUSES, 0)
        for row in self.db.read("SELECT status, COUNT(*) FROM outbox WHERE kind = ? GROUP BY status", (kind,)):
            counted[row[0]] = int(row[1])
        return StatusCounts(**counted)

    def last_error(self, kind: str) -> str | None:
        """The latest error recorded for a message of `kind`, if any."""
        rows = self.db.read(
            "SELECT last_error FROM outbox WHERE kind = ? AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1", (kind,)
        )
        return rows[0][0] if rows else None

    def synchronise(self, urls: Iterable[str]) -> bool:
        """Make `urls` the webhook destinations; when the setting changed, 410 marks are lifted. Changed?"""
        wanted = set(urls)
        with self.db.write() as conn:
            known = {row[0] for row in conn.execute("SELECT url FROM webhook_destinations").fetchall()}
            if known == wanted:
                return False
            conn.execute("DELETE FROM webhook_destinations")
            # Several senders may synchronise at once (PostgreSQL): the first one's rows stand.
            conn.executemany(
                "INSERT INTO webhook_destinations (url) VALUES (?) ON CONFLICT (url) DO NOTHING",
                [(url,) for url in sorted(wanted)],
            )
        return True
