"""The follow-up's own questions: which leads get a "we're back" message, who it goes to, and unsubscribing.

The messages themselves are outbox rows of kind `followup` (storage.outbox), claimed, retried and recorded there
like every other outgoing message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fallback.core.clock import iso
from fallback.storage.base import Database
from fallback.storage.leads import GENUINE
from fallback.storage.records import from_row

FOLLOWUP = "followup"  # the outbox kind
# The shared counter of FALLBACK_MAIL_RATE: every instance on the database sends against the same one.
MAIL_RATE_KEY = "followup-mail"
# The latest submission's page: the link in the mail goes back to where the visitor last was.
_LANDING = (
    "COALESCE((SELECT s.landing_path FROM submissions s WHERE s.lead_id = l.id "
    "ORDER BY s.at DESC, s.id DESC LIMIT 1), l.landing_path, '/')"
)
# Each lead that asked, is genuine (no spam, no drill), and has had no message queued since its latest submission, which
# was before the recovery; one waiting message per lead however many instances queue at once (the index).
_QUEUE = (
    "INSERT INTO outbox (kind, topic, lead_id, created_at) SELECT 'followup', 'followup', l.id, :now FROM leads l "
    f"WHERE {GENUINE} AND l.notify = 1 AND l.updated_at <= :recovered "
    "AND (l.notified_at IS NULL OR l.notified_at < l.updated_at) AND NOT EXISTS (SELECT 1 FROM outbox f "
    "WHERE f.kind = 'followup' AND f.lead_id = l.id AND f.created_at >= l.updated_at) "
    "ON CONFLICT (lead_id) WHERE kind = 'followup' AND status = 'pending' DO NOTHING"
)


@dataclass(frozen=True)
class Recipient:
    """Who a follow-up message goes to: the lead's address, name, language and the page it last asked for."""

    lead_id: int
    email: str
    email_key: str
    name: str
    language: str | None
    landing_path: str


@dataclass(frozen=True)
class FollowupCounts:
    """The follow-up mail as the status document and the metrics show it: waiting, sent, given up, the last error."""

    pending: int
    sent: int
    failed: int
    last_error: str | None


class FollowupStore:
    """The leads' side of the follow-up: queueing after a recovery, the recipient of a message, unsubscribing."""

    def __init__(self, db: Database):
        self.db = db

    def queue(self, recovered_at: datetime) -> int:
        """Queue a message for each lead that asked before `recovered_at` and is not mailed since; how many."""
        with self.db.write() as conn:
            values = {"now": iso(self.db.clock()), "recovered": iso(recovered_at)}
            return int(conn.execute(_QUEUE, values).rowcount)

    def recipient(self, lead_id: int) -> Recipient | None:
        """Who the message to `lead_id` goes to; None once the lead is erased (its messages went with it)."""
        rows = self.db.read(
            f"SELECT l.id AS lead_id, l.email, l.email_key, l.name, l.language, {_LANDING} AS landing_path "
            "FROM leads l WHERE l.id = ?",
            (lead_id,),
        )
        if not rows:
            return None
        return from_row(Recipient, rows[0])

    def unsubscribe(self, lead_id: int) -> bool:
        """End follow-up for one lead: its wish withdrawn, its waiting message dropped; False if no such lead."""
        with self.db.write() as conn:
            changed = conn.execute(
                "UPDATE leads SET notify = 0, unsubscribed_at = COALESCE(unsubscribed_at, ?) WHERE id = ?",
                (iso(self.db.clock()), lead_id),
            ).rowcount
            conn.execute(
                "DELETE FROM outbox WHERE kind = 'followup' AND lead_id = ? AND status = 'pending'", (lead_id,)
            )
        return bool(changed)

    def counts(self) -> FollowupCounts:
        """How many messages wait, went out, and were given up; and the latest refusal, if any."""
        counted = {"pending": 0, "sent": 0, "failed": 0}
        named = {"pending": "pending", "delivered": "sent", "failed": "failed"}
        for row in self.db.read("SELECT status, COUNT(*) FROM outbox WHERE kind = 'followup' GROUP BY status"):
            if row[0] in named:
                counted[named[row[0]]] = int(row[1])
        error = self.db.read(
            "SELECT last_error FROM outbox WHERE kind = 'followup' AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1"
        )
        return FollowupCounts(**counted, last_error=error[0][0] if error else None)

    def email_key(self, lead_id: int) -> str | None:
        """The case-folded address of a lead, which its unsubscribe token is bound to; None if it is gone."""
        rows = self.db.read("SELECT email_key FROM leads WHERE id = ?", (lead_id,))
        return rows[0][0] if rows else None
