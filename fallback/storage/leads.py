"""Leads: stored durably, de-duplicated by case-folded address, spam kept apart, erasable."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

from ..state import iso
from .base import Connection, Database
from .batch import GroupCommit
from .limits import RateCheck, count_attempt

LEAD_COLUMNS = (
    "id",
    "email",
    "name",
    "message",
    "consent",
    "consent_version",
    "consent_text",
    "consent_at",
    "landing_path",
    "language",
    "created_at",
    "updated_at",
    "submissions",
)


@dataclasses.dataclass(frozen=True)
class NewLead:
    """One submission of the contact form, as validated by the web layer."""

    email: str
    name: str = ""
    message: str = ""
    consent: bool = False
    consent_version: str | None = None
    consent_text: str | None = None
    landing_path: str = "/"
    language: str = "en"
    spam_reason: str | None = None


def email_key(email: str) -> str:
    """The de-duplication key: the address case-folded, so Paul@Example.org is paul@example.org."""
    return email.strip().casefold()


@dataclasses.dataclass(frozen=True)
class Submission:
    """What `submit` did: the lead's id if stored, or how long the client must wait."""

    lead_id: int | None
    retry_after: float | None


class LeadStore:
    """The leads table, and the rate limits counted in the same transaction as a submission."""

    def __init__(self, db: Database):
        self.db = db
        # Concurrent submissions of this process share one commit (see batch.GroupCommit).
        self._group = GroupCommit(db.write, self._apply_submission)

    def save(self, lead: NewLead) -> int:
        """Store one submission durably (committed on return); the same address updates one lead."""
        return cast(int, self.submit(lead).lead_id)  # no rate to count, so never turned away

    def hit_rate(self, rate: RateCheck) -> float | None:
        """Count one attempt against a client's limit; seconds to wait if it is over, else None."""
        return self.submit(None, rate).retry_after

    def submit(self, lead: NewLead | None, rate: RateCheck | None = None) -> Submission:
        """Count the attempt against `rate`, then, if allowed, store `lead`; committed durably on return."""
        return self._group.run(lead, rate)

    def _apply_submission(self, conn: Connection, lead: NewLead | None, rate: RateCheck | None) -> Submission:
        if rate is not None:
            retry_after = count_attempt(conn, rate, self.db.clock())
            if retry_after is not None:
                return Submission(None, retry_after)
        if lead is None:
            return Submission(None, None)
        sql, values = _upsert(lead, iso(self.db.clock()))
        return Submission(conn.execute(sql, values).fetchall()[0][0], None)

    def iter(
        self, since: datetime | None = None, until: datetime | None = None, batch: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Genuine leads (spam left out) by latest submission, `since` inclusive, `until` exclusive."""
        conditions: list[str] = ["spam = 0"]
        params: list[str] = []
        if since is not None:
            conditions.append("updated_at >= ?")
            params.append(iso(since))
        if until is not None:
            conditions.append("updated_at < ?")
            params.append(iso(until))
        sql = f"SELECT {', '.join(LEAD_COLUMNS)} FROM leads WHERE {' AND '.join(conditions)} ORDER BY updated_at, id"
        yield from self.db.stream(sql, params, batch)

    def recent(self, limit: int = 50, spam: bool = False) -> list[dict]:
        """The latest leads (or suspected spam), newest first."""
        rows = self.db.read(
            "SELECT * FROM leads WHERE spam = ? ORDER BY updated_at DESC, id DESC LIMIT ?",
            (int(spam), limit),
        )
        return [dict(row) for row in rows]

    def search(self, query: str = "", limit: int = 25, offset: int = 0) -> tuple[list[dict], int]:
        """A page of genuine leads, newest first, whose address, name or message contains `query`; and the total."""
        pattern = "%" + query.strip().casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where = (
            "spam = 0 AND (email_key LIKE :q ESCAPE '\\' OR lower(name) LIKE :q ESCAPE '\\' "
            "OR lower(message) LIKE :q ESCAPE '\\')"
        )
        total = self.db.read(f"SELECT COUNT(*) FROM leads WHERE {where}", {"q": pattern})[0][0]
        rows = self.db.read(
            f"SELECT * FROM leads WHERE {where} ORDER BY updated_at DESC, id DESC LIMIT :limit OFFSET :offset",
            {"q": pattern, "limit": limit, "offset": offset},
        )
        return [dict(row) for row in rows], total

    def delete(self, lead_id: int) -> bool:
        """Erase one lead (from the file too); False if there was none with that id."""
        with self.db.write() as conn:
            erased = conn.execute("DELETE FROM leads WHERE id = ?", (lead_id,)).rowcount
        if erased:
            self.db.compact()
        return bool(erased)

    def count(self) -> dict[str, int]:
        """How many genuine leads and how many suspected spam submissions are stored."""
        row = self.db.read(
            "SELECT COALESCE(SUM(CASE WHEN spam = 0 THEN 1 ELSE 0 END), 0) AS leads, "
            "COALESCE(SUM(CASE WHEN spam = 1 THEN 1 ELSE 0 END), 0) AS spam FROM leads"
        )[0]
        return {"leads": row["leads"], "spam": row["spam"]}

    def forget(self, email: str) -> int:
        """Erase every lead of one address (case-insensitive), spam included; returns how many."""
        with self.db.write() as conn:
            erased = conn.execute("DELETE FROM leads WHERE email_key = ?", (email_key(email),)).rowcount
        if erased:
            self.db.compact()
        return int(erased)

    def purge(self, older_than: datetime) -> int:
        """Erase leads whose latest submission is older than `older_than`; returns how many."""
        with self.db.write() as conn:
            erased = conn.execute("DELETE FROM leads WHERE updated_at < ?", (iso(older_than),)).rowcount
        if erased:
            self.db.compact()
        return int(erased)


_INSERT = (
    "INSERT INTO leads (email, email_key, name, message, consent, consent_version, consent_text, consent_at, "
    "landing_path, language, created_at, updated_at, submissions, spam, spam_reason) VALUES (:email, :email_key, "
    ":name, :message, :consent, :consent_version, :consent_text, :consent_at, :landing_path, :language, :now, :now, "
    "1, :spam, :spam_reason)"
)
# A later submission keeps earlier details it does not replace, and consent once given.
_MERGE = (
    " ON CONFLICT(email_key) WHERE spam = 0 DO UPDATE SET email = excluded.email, "
    "name = CASE WHEN excluded.name != '' THEN excluded.name ELSE leads.name END, "
    "message = CASE WHEN excluded.message != '' THEN excluded.message ELSE leads.message END, "
    "consent = CASE WHEN excluded.consent > leads.consent THEN excluded.consent ELSE leads.consent END, "
    "consent_version = COALESCE(excluded.consent_version, leads.consent_version), "
    "consent_text = COALESCE(excluded.consent_text, leads.consent_text), "
    "consent_at = COALESCE(excluded.consent_at, leads.consent_at), "
    "language = excluded.language, updated_at = excluded.updated_at, submissions = leads.submissions + 1"
)


def _upsert(lead: NewLead, now: str) -> tuple[str, dict]:
    """The statement storing `lead`: genuine leads merge by address, spam is always a row of its own."""
    values = {
        "email": lead.email.strip(),
        "email_key": email_key(lead.email),
        "name": lead.name,
        "message": lead.message,
        "consent": int(lead.consent),
        "consent_version": lead.consent_version if lead.consent else None,
        "consent_text": lead.consent_text if lead.consent else None,
        "consent_at": now if lead.consent else None,
        "landing_path": lead.landing_path,
        "language": lead.language,
        "now": now,
        "spam": int(lead.spam_reason is not None),
        "spam_reason": lead.spam_reason,
    }
    sql = _INSERT + ("" if lead.spam_reason else _MERGE) + " RETURNING id"
    return sql, values
