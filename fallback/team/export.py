"""Export: leads as streamed RFC 4180 CSV, one row per lead with every message it sent, formula cells neutralised."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from fallback.storage.records import Lead

# (CSV header, lead column); stable: scripts read these names. `message` holds every message (messages_cell).
COLUMNS = (
    ("email", "email"),
    ("name", "name"),
    ("message", "message"),
    ("consent", "consent"),
    ("consent_version", "consent_version"),
    ("consent_text", "consent_text"),
    ("consent_at", "consent_at"),
    ("landing_path", "landing_path"),
    ("language", "language"),
    ("first_submitted_at", "created_at"),
    ("last_submitted_at", "updated_at"),
    ("submissions", "submissions"),
    ("notify", "notify"),
    ("notified_at", "notified_at"),
)

# Between two messages in the `message` cell: a line of its own.
MESSAGE_SEPARATOR = "\n---\n"
_AS = ", as "

# OWASP CSV injection: a spreadsheet may run a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def neutralise(value: object) -> str:
    """The cell's text, prefixed with a quote if a spreadsheet could read it as a formula."""
    text = "" if value is None else str(value)
    if text[:1] in _FORMULA_FIRST:
        return "'" + text
    return text


_FORMULA_FIRST = frozenset(FORMULA_STARTS)
# Every column goes through the check, times and counts included: nothing reaches a spreadsheet unchecked.
_COLUMN_NAMES = tuple(column for _, column in COLUMNS)


def messages_cell(lead: Lead) -> str:
    """Every non-empty message of a lead, oldest first, each as `[2026-11-28T20:00:00Z] text`; `, as NAME` after
    the time when it was sent under another name than the lead's."""
    name = lead.get("name")
    entries = [  # stored times are UTC
        f"[{sent['at'][:19]}Z{_AS + sent['name'] if sent['name'] and sent['name'] != name else ''}] {sent['message']}"
        for sent in lead.get("messages") or ()
        if sent["message"]
    ]
    return MESSAGE_SEPARATOR.join(entries)


def lead_cells(lead: Lead) -> list[str]:
    """One lead as a CSV row in COLUMNS order.

    The rule of `neutralise`, written inline: a function call per cell costs a fifth of an export.
    """
    get = lead.get
    texts = ["" if value is None else str(value) for value in map(get, _COLUMN_NAMES)]
    texts[_MESSAGES] = messages_cell(lead)  # a lead read from storage has no `message`: its `messages`
    cells = ["'" + text if text[:1] in _FORMULA_FIRST else text for text in texts]
    cells[_CONSENT] = "yes" if get("consent") else "no"
    cells[_NOTIFY] = "yes" if get("notify") else "no"
    return cells


_CONSENT = _COLUMN_NAMES.index("consent")
_MESSAGES = _COLUMN_NAMES.index("message")
_NOTIFY = _COLUMN_NAMES.index("notify")


def csv_chunks(leads: Iterable[Lead], rows_per_chunk: int = 1000) -> Iterator[bytes]:
    """The header then the leads as UTF-8 CSV, in chunks, so memory does not grow with the rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([header for header, _ in COLUMNS])
    batch = []
    for lead in leads:
        batch.append(lead_cells(lead))
        if len(batch) >= rows_per_chunk:
            writer.writerows(batch)
            batch.clear()
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    writer.writerows(batch)
    yield buffer.getvalue().encode("utf-8")


def parse_bound(text: str | None, name: str) -> datetime | None:
    """An ISO date or date-time (UTC unless an offset is given) as a UTC datetime, or None; ValueError naming `name`.

    A time whose UTC equivalent falls outside years 1 to 9999 (0001-01-01T00:00:00+01:00) is refused too:
    nothing can be stored or compared there.
    """
    if text is None or not text.strip():
        return None
    example = "such as 2026-11-28 or 2026-11-28T18:30:00+01:00"
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{name}: expected an ISO date or date-time {example}, got {text[:60]!r}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{name}: {text[:60]!r} is out of range in UTC: expected a date-time {example}") from None
