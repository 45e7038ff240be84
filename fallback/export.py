"""Export: leads as streamed RFC 4180 CSV, with formula cells neutralised."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

# (CSV header, lead column); stable: scripts read these names.
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
)

# OWASP CSV injection: a spreadsheet may run a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def neutralise(value: object) -> str:
    """The cell's text, prefixed with a quote if a spreadsheet could read it as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def lead_cells(lead: dict) -> list[str]:
    """One lead as a CSV row in COLUMNS order."""
    cells = []
    for _, column in COLUMNS:
        value = lead.get(column)
        if column == "consent":
            value = "yes" if value else "no"
        cells.append(neutralise(value))
    return cells


def csv_chunks(leads: Iterable[dict], rows_per_chunk: int = 500) -> Iterator[bytes]:
    """The header then the leads as UTF-8 CSV, in chunks, so memory does not grow with the rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([header for header, _ in COLUMNS])
    pending = 0
    for lead in leads:
        writer.writerow(lead_cells(lead))
        pending += 1
        if pending >= rows_per_chunk:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue().encode("utf-8")


def parse_bound(text: str | None, name: str) -> datetime | None:
    """An ISO date or date-time (UTC unless an offset is given), or None; ValueError naming `name`."""
    if text is None or not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{name}: expected an ISO date or date-time such as 2026-11-28 or 2026-11-28T18:30:00+01:00, "
            f"got {text[:60]!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
