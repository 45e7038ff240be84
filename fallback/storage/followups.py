"""The follow-up queue: one "we're back" message per lead that asked, claimed once, throttled, retried, recorded."""

from __future__ import annotations

from datetime import datetime, timedelta

from fallback.core.clock import iso
from fallback.storage.base import Database
from fallback.storage.leads import GENUINE
from fallback.storage.limits import RateCheck, count_attempt, give_back_attempt

# The shared counter of FALLBACK_MAIL_RATE: every instance on the database sends against the same one.
MAIL_RATE_KEY = "followup-mail"
_WAITING = "sent_at IS NULL AND failed_at IS NULL"
# The latest submission's page: the link in the mail goes back to where the visitor last was.
_LANDING = (
    "COALESCE((SELECT s.landing_path FROM submissions s WHERE s.lead_id = l.id "
    "ORDER BY s.at DESC, s.id DESC LIMIT 1), l.landing_path, '/')"
)
# Each lead that asked, is genuine (no spam, no drill), and has had no message queued since its latest submission, which
# was before the recovery; one waiting message per lead however many instances queue at once (the index).
_QUEUE = (
    "INSERT INTO followups (lead_id, created_at) SELECT l.id, :now FROM leads l "
    f"WHERE {GENUINE} AND l.notify = 1 AND l.updated_at <= :recovered "
    "AND (l.notified_at IS NULL OR l.notified_at < l.updated_at) "
    "AND NOT EXISTS (SELECT 1 FROM followups f WHERE f.lead_id = l.id AND f.created_at >= l.updated_at) "
    "ON CONFLICT (lead_id) WHERE (sent_at IS NULL) AND (failed_at IS NULL) DO NOTHING"
)


class FollowupStore:
    """The queue of follow-up messages, shared by every process on the database."""

    def __init__(self, db: Database):
        self.db = db

    def queue(self, recovered_at: datetime) -> int:
        """Queue a message for each lead that asked before `recovered_at` and is not mailed since; how many."""
        with self.db.write() as conn:
            values = {"now": iso(self.db.clock()), "recovered": iso(recovered_at)}
            return int(conn.execute(_QUEUE, values).rowcount)

    def due(self) -> bool:
        """Whether a message waits to be sent now (a read: the sender claims only then)."""
        rows = self.db.read(
            f"SELECT 1 FROM followups WHERE {_WAITING} AND (next_attempt_at IS NULL OR next_attempt_at <= ?) LIMIT 1",
            (iso(self.db.clock()),),
        )
        return bool(rows)

    def claim(self, limit: int, seconds: int, hold_seconds: float) -> tuple[dict | None, float | None]:
        """The next due message with its lead, held `hold_seconds` for this caller alone; or (None, seconds to wait)
        when `limit` messages per `seconds` went out already, across every instance; (None, None) when none is due."""
        now = self.db.clock()
        with self.db.write() as conn:
            rows = conn.execute(
                f"SELECT id, lead_id, attempts FROM followups WHERE {_WAITING} "
                "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT 1" + self.db.lock_rows,
                (iso(now),),
            ).fetchall()
            if not rows:
                return None, None
            rate = RateCheck(MAIL_RATE_KEY, limit, seconds)
            wait = count_attempt(conn, rate, now)
            if wait is not None:
                give_back_attempt(conn, rate, now)
                return None, wait
            item = dict(rows[0])
            # Counted at the claim: a process killed while sending does not retry the message forever.
            conn.execute(
                "UPDATE followups SET next_attempt_at = ?, attempts = attempts + 1 WHERE id = ?",
                (iso(now + timedelta(seconds=hold_seconds)), item["id"]),
            )
            item["attempts"] += 1
            lead = conn.execute(
                f"SELECT l.email, l.email_key, l.name, l.language, {_LANDING} AS landing_path "
                "FROM leads l WHERE l.id = ?",
                (item["lead_id"],),
            ).fetchall()
            if not lead:  # erased meanwhile (erasure drops its messages too): nobody to write to
                conn.execute("DELETE FROM followups WHERE id = ?", (item["id"],))
                return None, None
        return {**item, **dict(lead[0])}, None

    def sent(self, followup_id: int, lead_id: int) -> None:
        """Record a message the server accepted, and when its lead was mailed."""
        now = iso(self.db.clock())
        with self.db.write() as conn:
            conn.execute("UPDATE followups SET sent_at = ?, last_error = NULL WHERE id = ?", (now, followup_id))
            conn.execute("UPDATE leads SET notified_at = ? WHERE id = ?", (now, lead_id))

    def failed(self, followup_id: int, error: str, retry_in: float | None) -> None:
        """Record a refusal: tried again in `retry_in` seconds, or, without it, given up."""
        now = self.db.clock()
        with self.db.write() as conn:
            conn.execute(
                "UPDATE followups SET last_error = ?, next_attempt_at = ?, failed_at = ? WHERE id = ?",
                (
                    error[:500],
                    iso(now + timedelta(seconds=retry_in or 0)),
                    None if retry_in is not None else iso(now),
                    followup_id,
                ),
            )

    def unsubscribe(self, lead_id: int) -> bool:
        """End follow-up for one lead: its wish withdrawn, its waiting message dropped; False if no such lead."""
        with self.db.write() as conn:
            changed = conn.execute(
                "UPDATE leads SET notify = 0, unsubscribed_at = COALESCE(unsubscribed_at, ?) WHERE id = ?",
                (iso(self.db.clock()), lead_id),
            ).rowcount
            conn.execute(f"DELETE FROM followups WHERE lead_id = ? AND {_WAITING}", (lead_id,))
        return bool(changed)

    def email_key(self, lead_id: int) -> str | None:
        """The case-folded address of a lead, which its unsubscribe token is bound to; None if it is gone."""
        rows = self.db.read("SELECT email_key FROM leads WHERE id = ?", (lead_id,))
        return rows[0][0] if rows else None

    def counts(self) -> dict:
        """How many messages wait, went out, and were given up; and the latest refusal, if any."""
        row = self.db.read(
            "SELECT COALESCE(SUM(CASE WHEN sent_at IS NULL AND failed_at IS NULL THEN 1 ELSE 0 END), 0) AS pending, "
            "COALESCE(SUM(CASE WHEN sent_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS sent, "
            "COALESCE(SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS failed FROM followups"
        )[0]
        error = self.db.read("SELECT last_error FROM followups WHERE last_error IS NOT NULL ORDER BY id DESC LIMIT 1")
        return {
            "pending": int(row["pending"]),
            "sent": int(row["sent"]),
            "failed": int(row["failed"]),
            "last_error": error[0][0] if error else None,
        }

    def send_now(self) -> int:
        """Make every waiting message due at once (the dashboard's button); how many."""
        with self.db.write() as conn:
            return int(conn.execute(f"UPDATE followups SET next_attempt_at = NULL WHERE {_WAITING}").rowcount)
