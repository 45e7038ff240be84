"""Submissions: every post of a lead kept with its time and message, a double click kept once, read back by pages.

A lead is one row per address (for de-duplication and the export); what each post said is a row
here, so that nobody who knows an address can overwrite what its owner wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from fallback.storage.base import LEAD_LINKED_TABLES, Connection, Database
from fallback.storage.records import Lead, SentMessage, as_lead

if TYPE_CHECKING:
    from fallback.storage.records import NewLead

PAGE_ROWS = 1000
# The latest non-empty message, for the dashboard's list of leads.
LATEST_MESSAGE = (
    "COALESCE((SELECT s.message FROM submissions s WHERE s.lead_id = leads.id AND s.message != '' "
    "ORDER BY s.at DESC, s.id DESC LIMIT 1), '') AS message"
)
# A condition on leads: one of its submissions' message or name contains :q (a LIKE pattern).
SAID = (
    "EXISTS (SELECT 1 FROM submissions s WHERE s.lead_id = leads.id "
    "AND (lower(s.message) LIKE :q ESCAPE '\\' OR lower(s.name) LIKE :q ESCAPE '\\'))"
)
_INSERT = (
    "INSERT INTO submissions (lead_id, at, name, message, landing_path, language, form_key) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (form_key) DO NOTHING"
)


def form_key(lead: NewLead) -> str | None:
    """The key of one sent form, its token and fields hashed: the same form sent twice has the same key."""
    if lead.token is None:
        return None
    sent = (
        lead.token,
        lead.email,
        lead.name,
        lead.message,
        str(int(lead.consent)),
        lead.landing_path,
        str(int(lead.notify)),
    )
    return hashlib.sha256("\0".join(sent).encode()).hexdigest()


def record(conn: Connection, lead_id: int, lead: NewLead, now: str, key: str | None) -> bool:
    """Keep one submission of `lead_id` in the caller's transaction; False if this very form was kept already."""
    values = (lead_id, now, lead.name, lead.message, lead.landing_path, lead.language, key)
    return bool(conn.execute(_INSERT, values).rowcount)


def kept_by(conn: Connection, key: str) -> int | None:
    """The lead whose submission has the form key `key`, if one has."""
    rows = conn.execute("SELECT lead_id FROM submissions WHERE form_key = ?", (key,)).fetchall()
    return rows[0][0] if rows else None


def erase(conn: Connection, where: str, params: Sequence[Any]) -> int:
    """Delete the leads matching `where`, and every row naming them (LEAD_LINKED_TABLES: their submissions, the
    lead.created event and its webhooks, their follow-up mail, whose error may quote the address), in the
    caller's transaction; how many leads."""
    for table in LEAD_LINKED_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE lead_id IN (SELECT id FROM leads WHERE {where})", params)
    return int(conn.execute(f"DELETE FROM leads WHERE {where}", params).rowcount)


def pages(
    db: Database,
    columns: Sequence[str],
    conditions: Sequence[str],
    params: Sequence[Any],
    rows: int = PAGE_ROWS,
    after: int = 0,
) -> Iterator[Lead]:
    """The leads matching `conditions` with an id above `after`, oldest first (by id), each with its `messages`.

    Read by key, `rows` leads per short read: no read transaction stays open while the caller waits
    (an export streaming to a slow client), so erasure's checkpoint can always go ahead between pages.
    By id, not by latest submission: a lead that sends again meanwhile is still read once, and each page
    starts with a seek on the primary key.
    """
    selected = ", ".join(f"l.{column}" for column in columns)
    sql = (
        f"SELECT {selected}, s.at AS sent_at, s.name AS sent_name, s.message AS sent_message FROM "
        f"(SELECT {', '.join(columns)} FROM leads WHERE {' AND '.join([*conditions, 'id > ?'])} "
        f"ORDER BY id LIMIT {int(rows)}) AS l "
        "LEFT JOIN submissions s ON s.lead_id = l.id ORDER BY l.id, s.at, s.id"
    )
    while True:
        page = list(db.stream(sql, [*params, after], rows))  # read whole: the read ends before anything is yielded
        if not page:
            return
        lead: Lead | None = None
        for row in page:
            sent: SentMessage = {
                "at": row.pop("sent_at"),
                "name": row.pop("sent_name"),
                "message": row.pop("sent_message"),
            }
            if lead is None or row["id"] != lead["id"]:
                if lead is not None:
                    yield lead
                lead = as_lead(row, [])  # a lead's first row, now exactly its columns, is the Lead: no copy per lead
            if sent["at"] is not None:  # a lead without submissions has one row, and no message
                lead["messages"].append(sent)
        assert lead is not None  # the page has a row
        yield lead
        after = lead["id"]
