"""The events: every flip and forced mode, kept as history and queued for announcement."""

from __future__ import annotations

from datetime import timedelta

from fallback.core.clock import iso
from fallback.storage.base import Connection, Database


def add_event(conn: Connection, at: str, kind: str, title: str, body: str) -> None:
    """Queue one event inside the caller's transaction (the flip or mode change it announces)."""
    conn.execute("INSERT INTO events (at, kind, title, body) VALUES (?, ?, ?, ?)", (at, kind, title, body))


class EventStore:
    """The notification queue the notifier drains, shared by every process on the database."""

    def __init__(self, db: Database):
        self.db = db

    def claim(self, hold_seconds: float, limit: int = 20) -> list[dict]:
        """Events due for announcement, each claimed for `hold_seconds` so that no other process sends it too."""
        now = self.db.clock()
        claimed = []
        with self.db.write() as conn:
            rows = conn.execute(
                "SELECT * FROM events WHERE notified_at IS NULL AND gave_up_at IS NULL "
                "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT ?" + self.db.lock_rows,
                (iso(now), limit),
            ).fetchall()
            for row in rows:
                conn.execute(
                    "UPDATE events SET next_attempt_at = ? WHERE id = ?",
                    (iso(now + timedelta(seconds=hold_seconds)), row["id"]),
                )
                claimed.append(dict(row))
        return claimed

    def sent(self, event_id: int) -> None:
        """Mark an event announced."""
        with self.db.write() as conn:
            conn.execute(
                "UPDATE events SET notified_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?",
                (iso(self.db.clock()), event_id),
            )

    def failed(self, event_id: int, error: str, retry_in: float | None) -> None:
        """Record a failed announcement; without `retry_in` it is given up (kept in the history)."""
        now = self.db.clock()
        with self.db.write() as conn:
            conn.execute(
                "UPDATE events SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, gave_up_at = ? "
                "WHERE id = ?",
                (
                    error[:500],
                    iso(now + timedelta(seconds=retry_in or 0)),
                    None if retry_in is not None else iso(now),
                    event_id,
                ),
            )

    def recent(self, limit: int = 20) -> list[dict]:
        """The latest flips and mode changes, newest first."""
        return [dict(row) for row in self.db.read("SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,))]
