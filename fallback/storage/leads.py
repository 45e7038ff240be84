"""Leads: stored durably, one per address (see `email_key`) with every submission kept, spam kept apart, erasable."""

from __future__ import annotations

import dataclasses
import itertools
import string
from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

import idna

from fallback.core.clock import iso
from fallback.storage.base import Connection, Database, StorageError
from fallback.storage.batch import GroupCommit
from fallback.storage.events import record_event
from fallback.storage.limits import RateCheck, count_attempt
from fallback.storage.records import LEAD_COLUMNS, Lead, LeadCounts, ListedLead, NewLead, listed_lead
from fallback.storage.serialize import lead_created
from fallback.storage.submissions import LATEST_MESSAGE, SAID, erase, form_key, kept_by, pages, record

# A genuine lead: neither suspected spam nor a drill's test lead (both kept apart from exports, mail and webhooks).
GENUINE = "spam = 0 AND drill = 0"


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def email_key(email: str) -> str:
    """The de-duplication key: the domain IDNA-encoded, and only ASCII letters lower-cased (SPEC 5, Leads).

    Paul@Example.org is paul@example.org, but no other folding: casefold() made `alice@straße.de` and
    `alice@strasse.de` one lead (ß is ss), so a stranger's look-alike address took over someone's lead.
    The local part's other characters are kept as sent; a domain IDNA cannot encode is kept as sent too.
    """
    local, at, domain = email.strip().rpartition("@")
    if at:
        try:
            domain = idna.encode(domain, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            pass
    return (local + at + domain).translate(_ASCII_LOWER)


@dataclasses.dataclass(frozen=True)
class Submission:
    """What `submit` did: the lead's id if stored (or stored already: a double click), or how long to wait."""

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
        now, key = iso(self.db.clock()), form_key(lead)
        stored = conn.execute(*_upsert(lead, now, key)).fetchall()
        if not stored:  # this very form was kept already: a double click, thanked again and stored once
            return Submission(kept_by(conn, key) if key else None, None)
        lead_id, submissions = stored[0][0], stored[0][1]
        if not record(conn, lead_id, lead, now, key):
            # The same form committed meanwhile by another instance (PostgreSQL): not one more submission.
            conn.execute("UPDATE leads SET submissions = submissions - 1 WHERE id = ?", (lead_id,))
        elif submissions == 1 and lead.spam_reason is None and not lead.drill:  # spam and drills never go out
            record_event(conn, now, "lead.created", lead_created(lead_id, lead, now), lead_id)
        return Submission(lead_id, None)

    def iter(self, since: datetime | None = None, until: datetime | None = None, batch: int = 1000) -> Iterator[Lead]:
        """Genuine leads (spam left out), oldest first, whose latest submission is from `since` (inclusive) until
        `until` (exclusive), each with its `messages` (at, name, message) oldest first; read a page at a time."""
        conditions: list[str] = [GENUINE]
        params: list[str] = []
        if since is not None:
            conditions.append("updated_at >= ?")
            params.append(iso(since))
        if until is not None:
            conditions.append("updated_at < ?")
            params.append(iso(until))
        yield from pages(self.db, LEAD_COLUMNS, conditions, params, batch)

    def after(self, last_id: int, limit: int, since: datetime | None = None) -> list[Lead]:
        """Up to `limit` genuine leads with an id above `last_id`, oldest first, as `iter` gives them; paging by id
        with these meets every lead once, however many arrive meanwhile."""
        conditions = [GENUINE, "id <= ?"]
        params: list[Any] = [self.settled_id()]
        if since is not None:
            conditions.append("updated_at >= ?")
            params.append(iso(since))
        return list(itertools.islice(pages(self.db, LEAD_COLUMNS, conditions, params, limit, after=last_id), limit))

    def settled_id(self) -> int:
        """The highest lead id with no lower one still being written: a page that ends there skips nothing."""
        if not self.db.wait_for_writers:
            return int(self.db.read("SELECT COALESCE(MAX(id), 0) FROM leads")[0][0])
        with self.db.write() as conn:
            conn.execute(self.db.wait_for_writers.format(table="leads"))
            return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM leads").fetchall()[0][0])

    def recent(self, limit: int = 50, spam: bool = False) -> list[ListedLead]:
        """The latest leads (or suspected spam), newest first."""
        rows = self.db.read(
            f"SELECT *, {LATEST_MESSAGE} FROM leads WHERE spam = ? AND drill = 0 "
            "ORDER BY updated_at DESC, id DESC LIMIT ?",
            (int(spam), limit),
        )
        return [listed_lead(row) for row in rows]

    def search(self, query: str = "", limit: int = 25, offset: int = 0) -> tuple[list[ListedLead], int]:
        """A page of genuine leads, newest first, whose address, name or a message contains `query`; and the total."""
        pattern = "%" + query.strip().casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where = f"{GENUINE} AND (email_key LIKE :q ESCAPE '\\' OR lower(name) LIKE :q ESCAPE '\\' OR {SAID})"
        total = self.db.read(f"SELECT COUNT(*) FROM leads WHERE {where}", {"q": pattern})[0][0]
        rows = self.db.read(
            f"SELECT *, {LATEST_MESSAGE} FROM leads WHERE {where} ORDER BY updated_at DESC, id DESC "
            "LIMIT :limit OFFSET :offset",
            {"q": pattern, "limit": limit, "offset": offset},
        )
        return [listed_lead(row) for row in rows], int(total)

    def delete(self, lead_id: int) -> bool:
        """Erase one lead and its submissions (from the files too); False if there was none with that id."""
        return bool(self._erase("id = ?", (lead_id,)))

    def count(self) -> LeadCounts:
        """How many genuine leads and how many suspected spam submissions are stored."""
        row = self.db.read(
            "SELECT COALESCE(SUM(CASE WHEN spam = 0 THEN 1 ELSE 0 END), 0) AS leads, "
            "COALESCE(SUM(CASE WHEN spam = 1 THEN 1 ELSE 0 END), 0) AS spam FROM leads WHERE drill = 0"
        )[0]
        return LeadCounts(leads=int(row["leads"]), spam=int(row["spam"]))

    def drill_lead(self, email: str) -> ListedLead | None:
        """The drill lead of this address (`fallback drill --rehearse` reads back what it sent), or None."""
        rows = self.db.read(
            f"SELECT *, {LATEST_MESSAGE} FROM leads WHERE email_key = ? AND drill = 1", (email_key(email),)
        )
        return listed_lead(rows[0]) if rows else None

    def forget(self, email: str) -> int:
        """Erase every lead of one address (ASCII letters case-insensitive), spam included, with their submissions."""
        return self._erase("email_key = ?", (email_key(email),))

    def purge(self, older_than: datetime) -> int:
        """Erase leads whose latest submission is older than `older_than`, and their submissions; how many."""
        return self._erase("updated_at < ?", (iso(older_than),))

    def _erase(self, where: str, params: tuple) -> int:
        with self.db.write() as conn:
            erased = erase(conn, where, params)
        try:
            # Even when nothing matched: an erasure an open reader kept in the WAL is finished by trying again.
            self.db.compact()
        except StorageError as error:
            raise StorageError(f"erased {erased} lead(s) from the tables, but {error}") from error
        return erased


# Nothing is stored when this very form (its key) was kept already: a double click. SQLite needs the WHERE
# anyway, to read ON CONFLICT after INSERT ... SELECT as the upsert clause.
_INSERT = (
    "INSERT INTO leads (email, email_key, name, consent, consent_version, consent_text, consent_at, "
    "landing_path, language, created_at, updated_at, submissions, spam, spam_reason, notify, notify_text, notify_at, "
    "drill) "
    "SELECT :email, :email_key, :name, :consent, :consent_version, :consent_text, :consent_at, :landing_path, "
    ":language, :now, :now, 1, :spam, :spam_reason, :notify, :notify_text, :notify_at, :drill "
    "WHERE NOT EXISTS (SELECT 1 FROM submissions WHERE form_key = :form_key)"
)
# A later submission never replaces what an earlier one said (its own words go to `submissions`): the
# first name given stays, and so does the first consent, with its wording, version and time.
_MERGE = (
    # The address as first sent stays too: a later spelling is only another way of writing the same key.
    " ON CONFLICT(email_key) WHERE spam = 0 DO UPDATE SET "
    "name = CASE WHEN leads.name = '' THEN excluded.name ELSE leads.name END, "
    "consent = CASE WHEN leads.consent = 1 THEN 1 ELSE excluded.consent END, "
    "consent_version = CASE WHEN leads.consent = 1 THEN leads.consent_version ELSE excluded.consent_version END, "
    "consent_text = CASE WHEN leads.consent = 1 THEN leads.consent_text ELSE excluded.consent_text END, "
    "consent_at = CASE WHEN leads.consent = 1 THEN leads.consent_at ELSE excluded.consent_at END, "
    # A tick asks for the mail, unless the address unsubscribed: anyone can tick the box with anyone's address,
    # so the form never subscribes it again (only the person, by a confirmed opt-in, could). No tick leaves the
    # earlier wish as it was.
    "notify = CASE WHEN leads.unsubscribed_at IS NULL AND excluded.notify = 1 THEN 1 ELSE leads.notify END, "
    "notify_text = CASE WHEN leads.unsubscribed_at IS NULL AND excluded.notify = 1 THEN excluded.notify_text "
    "ELSE leads.notify_text END, "
    "notify_at = CASE WHEN leads.unsubscribed_at IS NULL AND excluded.notify = 1 THEN excluded.notify_at "
    "ELSE leads.notify_at END, "
    "language = excluded.language, updated_at = excluded.updated_at, submissions = leads.submissions + 1"
)


def _upsert(lead: NewLead, now: str, key: str | None) -> tuple[str, dict]:
    """The statement storing `lead` unless its form was kept already: genuine leads merge by address, spam is
    always a row of its own."""
    values = {
        "email": lead.email.strip(),
        "email_key": email_key(lead.email),
        "name": lead.name,
        "consent": int(lead.consent),
        "consent_version": lead.consent_version if lead.consent else None,
        "consent_text": lead.consent_text if lead.consent else None,
        "consent_at": now if lead.consent else None,
        "landing_path": lead.landing_path,
        "language": lead.language,
        "now": now,
        "spam": int(lead.spam_reason is not None),
        "spam_reason": lead.spam_reason,
        "form_key": key,
        "notify": int(lead.notify),
        "notify_text": lead.notify_text if lead.notify else None,
        "notify_at": now if lead.notify else None,
        "drill": int(lead.drill),
    }
    sql = _INSERT + ("" if lead.spam_reason else _MERGE) + " RETURNING id, submissions"
    return sql, values
