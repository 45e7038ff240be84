"""CSV export: stable columns, RFC 4180 quoting, formulas neutralised, date bounds."""

import csv
import io
from datetime import UTC, datetime, timedelta, timezone

import pytest

from fallback.team.export import COLUMNS, csv_chunks, neutralise, parse_bound


def read(chunks) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8"), newline="")))


@pytest.mark.parametrize("cell", ["=1+1", "+33 6 12", "-2", "@SUM(A1)", "\tx", "\rx", "\nx"])
def test_it_neutralises_cells_a_spreadsheet_would_run(cell):
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["paul@example.org", "Paul", "a=b", "", "'quoted"])
def test_it_keeps_harmless_cells_as_they_are(cell):
    assert neutralise(cell) == cell


def test_it_writes_a_header_and_one_row_per_lead_with_quoting():
    lead = {
        "email": "a@example.org",
        "name": 'Ann "the boss", Jr',
        "messages": [
            {"at": "2026-11-28T11:00:00.000000+00:00", "name": "Ann", "message": "line 1\nline 2"},
            {"at": "2026-11-28T12:00:00.000000+00:00", "name": 'Ann "the boss", Jr', "message": ""},
        ],
        "consent": 1,
        "created_at": "2026-11-28T12:00:00.000000+00:00",
        "updated_at": "2026-11-28T12:00:00.000000+00:00",
        "submissions": 2,
    }
    rows = read(csv_chunks([lead]))
    assert rows[0] == [header for header, _ in COLUMNS]
    row = dict(zip(rows[0], rows[1]))
    assert row["name"] == 'Ann "the boss", Jr'
    assert row["message"] == "[2026-11-28T11:00:00Z, as Ann] line 1\nline 2"  # an empty message left out
    assert row["consent"] == "yes"
    assert row["submissions"] == "2"


def test_it_streams_in_chunks():
    leads = ({"email": f"u{i}@example.org"} for i in range(1200))
    chunks = list(csv_chunks(leads, rows_per_chunk=500))
    assert len(chunks) == 3
    assert len(read(chunks)) == 1201


def test_an_empty_export_still_has_its_header():
    assert read(csv_chunks([])) == [[header for header, _ in COLUMNS]]


def test_bounds_are_utc_unless_an_offset_is_given():
    assert parse_bound("2026-11-28", "since") == datetime(2026, 11, 28, tzinfo=UTC)
    assert parse_bound("2026-11-28T18:30:00+01:00", "since") == datetime(
        2026, 11, 28, 18, 30, tzinfo=timezone(timedelta(hours=1))
    )
    assert parse_bound(None, "since") is None


def test_a_bad_bound_names_the_parameter():
    with pytest.raises(ValueError, match="^until: expected an ISO date"):
        parse_bound("yesterday", "until")
