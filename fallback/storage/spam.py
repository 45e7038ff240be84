"""The spam folder: suspected spam, listed with its reason, and the admin's "not spam" that makes one a lead.

A real customer who typed fast, or filled the form from a password manager, lands here; rescued, the submission
joins that address's lead (or becomes it), counts and is exported, gets the follow-up if it asked, and a new lead
fires `lead.created`. Nothing here sends anything: spam never reaches a webhook or a mail on its own.
"""

from __future__ import annotations

from fallback.core.clock import iso, parse_iso
from fallback.storage.base import Connection, Database
from fallback.storage.events import record_event
from fallback.storage.leads import email_key
from fallback.storage.records import HELD_SPAM_COLUMNS, HeldSpam, NewLead, held_spam
from fallback.storage.serialize import lead_created
from fallback.storage.submissions import LATEST_MESSAGE

# What an admin needs to judge a suspected spam: who, why, when, and what it said last.
_LISTED = ", ".join(name for name in HELD_SPAM_COLUMNS if name != "message") + f", {LATEST_MESSAGE}"


class SpamStore:
    """Lists suspected spam and rescues it."""

    def __init__(self, db: Database):
        self.db = db

    def list(self, limit: int = 100) -> list[HeldSpam]:
        """The latest suspected spam, newest first, each with its reason and latest message."""
        rows = self.db.read(
            f"SELECT {_LISTED} FROM leads WHERE spam = 1 AND drill = 0 ORDER BY updated_at DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [held_spam(row) for row in rows]

    def keep(self, email: str) -> int:
        """Make every suspected spam of this address (compared as the leads are) a real lead; how many were."""
        with self.db.write() as conn:
            ids = [row[0] for row in conn.execute(_SPAM_OF_KEY, (email_key(email),)).fetchall()]
            for spam_id in ids:
                _rescue(conn, spam_id, iso(self.db.clock()))
        return len(ids)

    def keep_one(self, lead_id: int) -> bool:
        """Make one suspected spam a real lead; False when there is no suspected spam with that id."""
        with self.db.write() as conn:
            found = conn.execute("SELECT 1 FROM leads WHERE id = ? AND spam = 1 AND drill = 0", (lead_id,)).fetchall()
            if found:
                _rescue(conn, lead_id, iso(self.db.clock()))
        return bool(found)


_SPAM_OF_KEY = "SELECT id FROM leads WHERE email_key = ? AND spam = 1 AND drill = 0 ORDER BY id"


def _rescue(conn: Connection, spam_id: int, now: str) -> None:
    """In the caller's transaction: the spam row joins its address's lead, or becomes that lead."""
    spam = dict(conn.execute(f"SELECT *, {LATEST_MESSAGE} FROM leads WHERE id = ?", (spam_id,)).fetchall()[0])
    lead = conn.execute("SELECT id FROM leads WHERE email_key = ? AND spam = 0", (spam["email_key"],)).fetchall()
    if lead:  # the address has a lead already: its submissions join it, as a new post of that address would
        lead_id = lead[0][0]
        conn.execute("UPDATE submissions SET lead_id = ? WHERE lead_id = ?", (lead_id, spam_id))
        conn.execute(
            "UPDATE leads SET submissions = submissions + ?, "
            "updated_at = CASE WHEN updated_at < ? THEN ? ELSE updated_at END, "
            "name = CASE WHEN name = '' THEN ? ELSE name END, "
            "notify = CASE WHEN ? = 1 AND unsubscribed_at IS NULL THEN 1 ELSE notify END WHERE id = ?",
            (spam["submissions"], spam["updated_at"], spam["updated_at"], spam["name"], spam["notify"], lead_id),
        )
        conn.execute("DELETE FROM leads WHERE id = ?", (spam_id,))
        return
    conn.execute("UPDATE leads SET spam = 0, spam_reason = NULL WHERE id = ?", (spam_id,))
    rescued = NewLead(
        email=spam["email"],
        name=spam["name"],
        message=spam["message"] or "",
        consent=bool(spam["consent"]),
        landing_path=spam["landing_path"],
        language=spam["language"],
        notify=bool(spam["notify"]),
    )
    created = parse_iso(spam["created_at"])
    record_event(conn, now, "lead.created", lead_created(spam_id, rescued, iso(created) if created else now), spam_id)
