"""The webhook queue: one row per (event, destination URL), written in the transaction of what caused the event.

The sender (fallback/webhooks.py) claims the rows, posts them and records the answer here. A row is `pending`
until it is `delivered`, given up (`failed`, after 24 hours of retries), refused for good by a 410 (`gone`), or
`skipped` (its destination had answered 410 Gone, or is no longer in FALLBACK_WEBHOOK_URLS).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from fallback.core.clock import iso
from fallback.storage.base import Connection, Database

EVENT_TYPES = (
    "incident.opened",
    "incident.closed",
    "mode.changed",
    "lead.created",
    "admission.started",
    "admission.stopped",
)
# How long an event is retried before it is given up (the sender's backoff spreads the tries over it).
RETRY_HOURS = 24
_DUE = "status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
# A row is posted only while its URL is a destination of the current setting, and not gone.
_UNDELIVERABLE = "url NOT IN (SELECT url FROM webhook_destinations WHERE gone_at IS NULL)"
_INSERT = (
    "INSERT INTO webhook_deliveries (event_id, type, payload, url, lead_id, created_at, retry_until, status, "
    "attempts) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0)"
)


def rfc3339(moment: datetime | str | None) -> str | None:
    """A stored time (or a datetime) as RFC 3339 with `Z`, as Standard Webhooks payloads write times."""
    if moment is None:
        return None
    text = iso(moment) if isinstance(moment, datetime) else moment
    return text.replace("+00:00", "Z")


class WebhookStore:
    """The webhook deliveries, shared by every process on the database."""

    def __init__(self, db: Database):
        self.db = db
        # FALLBACK_WEBHOOK_URLS of this process (configure): where the events it causes are queued.
        self.destinations: tuple[str, ...] = ()

    def configure(self, urls: Sequence[str]) -> None:
        """Queue the events this process causes for each of `urls` from now on."""
        self.destinations = tuple(dict.fromkeys(urls))

    def queue(
        self, conn: Connection, kind: str, data: dict[str, Any], at: str, lead_id: int | None = None
    ) -> str | None:
        """Queue one event of time `at` (stored ISO text) for every destination inside the caller's transaction;
        its id, None without destinations. With `lead_id`, erasing that lead erases the event too."""
        if not self.destinations:
            return None
        assert kind in EVENT_TYPES, kind
        now = datetime.fromisoformat(at)
        # The id is the Standard Webhooks `webhook-id`: the same on every retry, so receivers can de-duplicate.
        event_id = f"msg_{uuid.uuid4().hex}"
        body = json.dumps({"type": kind, "timestamp": rfc3339(now), "data": data}, separators=(",", ":"))
        until = iso(now + timedelta(hours=RETRY_HOURS))
        conn.executemany(_INSERT, [(event_id, kind, body, url, lead_id, iso(now), until) for url in self.destinations])
        return event_id

    def synchronise(self, urls: Sequence[str]) -> bool:
        """Make `urls` the destinations deliveries go to; when the setting changed, 410 marks are lifted. Changed?"""
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

    def due(self) -> bool:
        """Whether a delivery waits to be posted now (a read: the sender claims only then)."""
        return bool(self.db.read(f"SELECT 1 FROM webhook_deliveries WHERE {_DUE} LIMIT 1", (iso(self.db.clock()),)))

    def claim(self, hold_seconds: float, limit: int = 20) -> list[dict]:
        """The oldest due delivery of each destination (up to `limit`), each held `hold_seconds` for this caller.

        One per destination, so that a destination's next event is claimed only once the one before it was
        posted: they arrive in order of creation. Rows of a gone or removed destination are skipped here.
        """
        now = iso(self.db.clock())
        claimed: list[dict] = []
        with self.db.write() as conn:
            conn.execute(
                f"UPDATE webhook_deliveries SET status = 'skipped', last_error = CASE WHEN url IN "
                "(SELECT url FROM webhook_destinations WHERE gone_at IS NOT NULL) THEN "
                "'not sent: this receiver answered 410 Gone; skipped until FALLBACK_WEBHOOK_URLS changes' "
                f"ELSE 'not sent: no longer in FALLBACK_WEBHOOK_URLS' END WHERE {_DUE} AND {_UNDELIVERABLE}",
                (now,),
            )
            rows = conn.execute(
                f"SELECT * FROM webhook_deliveries WHERE {_DUE} ORDER BY id LIMIT ?" + self.db.lock_rows,
                (now, limit * 5),
            ).fetchall()
            held = iso(self.db.clock() + timedelta(seconds=hold_seconds))
            for row in rows:
                if len(claimed) >= limit or any(item["url"] == row["url"] for item in claimed):
                    continue
                # Guarded: a row another sender claimed meanwhile is no longer due, and is left to it.
                taken = conn.execute(
                    "UPDATE webhook_deliveries SET next_attempt_at = ?, attempts = attempts + 1 "
                    f"WHERE id = ? AND {_DUE}",
                    (held, row["id"], now),
                ).rowcount
                if taken:
                    claimed.append({**dict(row), "attempts": row["attempts"] + 1})
        return claimed

    def delivered(self, delivery_id: int, status: int) -> None:
        """Record a delivery the receiver accepted."""
        now = iso(self.db.clock())
        with self.db.write() as conn:
            conn.execute(
                "UPDATE webhook_deliveries SET status = 'delivered', last_attempt_at = ?, last_status = ?, "
                "last_error = NULL, next_attempt_at = NULL WHERE id = ?",
                (now, status, delivery_id),
            )

    def failed(
        self, delivery: dict, error: str, status: int | None, retry_in: float | None, hold_destination: bool
    ) -> bool:
        """Record a failed post: tried again in `retry_in` seconds within its 24 hours, else given up; with
        `hold_destination` (the receiver is down) its destination's later events wait as long. Retried?"""
        now = self.db.clock()
        retry_at = iso(now + timedelta(seconds=retry_in)) if retry_in is not None else None
        retrying = retry_at is not None and retry_at <= delivery["retry_until"]
        with self.db.write() as conn:
            conn.execute(
                "UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, last_attempt_at = ?, last_status = ?, "
                "last_error = ? WHERE id = ?",
                ("pending" if retrying else "failed", retry_at, iso(now), status, error[:500], delivery["id"]),
            )
            if retrying and hold_destination:
                # Kept in order: nothing after it goes to that receiver before it does.
                conn.execute(
                    "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE url = ? AND id > ? AND status = 'pending' "
                    "AND (next_attempt_at IS NULL OR next_attempt_at < ?)",
                    (retry_at, delivery["url"], delivery["id"], retry_at),
                )
        return retrying

    def gone(self, delivery: dict, error: str) -> None:
        """Record a 410 Gone: this delivery is over, and its destination skipped until the setting changes."""
        now = iso(self.db.clock())
        with self.db.write() as conn:
            conn.execute(
                "UPDATE webhook_deliveries SET status = 'gone', last_attempt_at = ?, last_status = 410, "
                "last_error = ?, next_attempt_at = NULL WHERE id = ?",
                (now, error[:500], delivery["id"]),
            )
            conn.execute(
                "UPDATE webhook_destinations SET gone_at = ?, gone_error = ? WHERE url = ?",
                (now, error[:500], delivery["url"]),
            )

    def retry(self, delivery_id: int) -> bool:
        """Post one delivery again now, with 24 hours of retries (its receiver's 410 mark lifted); False if unknown."""
        now = self.db.clock()
        with self.db.write() as conn:
            rows = conn.execute("SELECT url FROM webhook_deliveries WHERE id = ?", (delivery_id,)).fetchall()
            if not rows:
                return False
            conn.execute(
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = NULL, retry_until = ? "
                "WHERE id = ?",
                (iso(now + timedelta(hours=RETRY_HOURS)), delivery_id),
            )
            # An admin asking again overrides the 410: the receiver may be back.
            conn.execute(
                "UPDATE webhook_destinations SET gone_at = NULL, gone_error = NULL WHERE url = ?", (rows[0][0],)
            )
        return True

    def recent(self, limit: int = 20) -> list[dict]:
        """The latest deliveries, newest first (their payload left out)."""
        rows = self.db.read(
            "SELECT id, event_id, type, url, created_at, status, attempts, next_attempt_at, last_attempt_at, "
            "last_status, last_error FROM webhook_deliveries ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [dict(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many deliveries are in each status (every status named, zero included)."""
        counted = {status: 0 for status in ("pending", "delivered", "failed", "gone", "skipped")}
        for row in self.db.read("SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status"):
            counted[row[0]] = int(row[1])
        return counted
