"""The export's and the API's date bounds: a bad or out-of-range one is a clear 400 in plain text, never a 500,
and nothing of the request is ever answered as markup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from helpers import log_in
from hypothesis import given
from hypothesis import strategies as st

from fallback.core.clock import iso
from fallback.team.export import parse_bound

BACKENDS = ["sqlite", "postgres"]
EXPORT_TOKEN = "export-token-of-the-bounds-tests"
API_TOKEN = "api-token-of-the-bounds-tests-0"
OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
META_REFRESH = "<meta http-equiv=refresh content=0;url=//evil.example>"


@pytest.fixture
def env(env):
    return {**env, "FALLBACK_EXPORT_TOKEN": EXPORT_TOKEN, "FALLBACK_API_TOKEN": API_TOKEN}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("bound", OUT_OF_RANGE)
@pytest.mark.parametrize("name", ["since", "until"])
def test_an_out_of_range_bound_on_the_export_is_a_clear_400(client, bound, name):
    response = client.get(f"/_fallback/admin/export.csv?{name}={quote(bound)}", headers=bearer(EXPORT_TOKEN))
    assert response.status_code == 400 and response.mimetype == "text/plain"
    assert f"{name}: " in response.get_data(as_text=True) and "out of range" in response.get_data(as_text=True)


@pytest.mark.parametrize("bound", OUT_OF_RANGE)
def test_an_out_of_range_bound_is_a_400_for_an_admin_and_on_the_api_too(client, bound):
    assert log_in(client).status_code == 303
    assert client.get(f"/_fallback/admin/export.csv?since={quote(bound)}").status_code == 400
    response = client.get(f"/_fallback/api/v1/leads?since={quote(bound)}", headers=bearer(API_TOKEN))
    assert response.status_code == 400 and "out of range" in response.get_json()["detail"]
    assert client.get(f"/_fallback/api/v1/leads?since={quote(bound)}", headers=bearer(EXPORT_TOKEN)).status_code == 400


def test_the_exports_error_is_plain_text_never_markup(client):
    response = client.get(f"/_fallback/admin/export.csv?since={quote(META_REFRESH)}", headers=bearer(EXPORT_TOKEN))
    assert response.status_code == 400
    assert response.mimetype == "text/plain" and response.headers["X-Content-Type-Options"] == "nosniff"


@given(st.text(max_size=40))
def test_any_text_is_a_utc_bound_none_or_a_value_error(text):
    try:
        moment = parse_bound(text, "since")
    except ValueError as error:
        assert str(error).startswith("since: ")
        return
    assert moment is None or (moment.utcoffset().total_seconds() == 0 and iso(moment))


# ISO 8601 offsets are whole minutes (Python 3.11 reads a sub-minute one, +00:00:00.000001, as +00:00).
OFFSETS = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(lambda minutes: timedelta(minutes=minutes))


@given(st.datetimes(timezones=st.builds(timezone, OFFSETS)))
def test_any_date_time_with_an_offset_is_a_utc_bound_or_a_value_error(moment):
    try:
        bound = parse_bound(moment.isoformat(), "until")
    except ValueError as error:
        assert "out of range" in str(error)
        return
    assert bound == moment and bound.tzinfo == UTC and datetime.fromisoformat(iso(bound)) == moment
