"""`POST /_fallback/api/v1/verdicts`: a probe agent's verdict, stored under its name; every bad input a 4xx problem."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from helpers import assert_problem
from openapi_check import check_answer, problems

from fallback.checking.vantage import MAX_BODY, MAX_REASON
from fallback.core.clock import utcnow
from fallback.team.openapi import document

BACKENDS = ["sqlite", "postgres"]
TOKEN = "api-token-for-the-test-suite"
EXPORT_TOKEN = "export-token-for-the-test-suite"
ROUTE = "/_fallback/api/v1/verdicts"
DOCUMENT = document()


@pytest.fixture
def env(env):
    """The shared test environment, with the API and export tokens, an interval and a quorum set."""
    return {
        **env,
        "FALLBACK_API_TOKEN": TOKEN,
        "FALLBACK_EXPORT_TOKEN": EXPORT_TOKEN,
        "FALLBACK_CHECK_INTERVAL": "2",
        "FALLBACK_QUORUM": "2",
    }


def report(**fields) -> dict:
    """A valid report, with `fields` changed (a field set to ... is left out)."""
    body = {"name": "paris probe", "state": "down", "ok": False, "reason": "HTTP 503", "at": utcnow().isoformat()}
    body.update(fields)
    return {name: value for name, value in body.items() if value is not ...}


def post(client, body=None, token: str | None = TOKEN, data: str | bytes | None = None, **headers):
    """One POST verdicts, its answer checked against the OpenAPI document."""
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = data if data is not None else json.dumps(body)
    response = client.post(ROUTE, data=payload, headers=headers, content_type="application/json")
    check_answer(DOCUMENT, "POST", "/verdicts", response)
    return response


def test_a_valid_report_fits_the_documented_request_schema():
    assert problems(report(), DOCUMENT["components"]["schemas"]["VerdictReport"], DOCUMENT) == []


def test_a_verdict_is_stored_as_an_agents_and_answered_with_the_interval_and_quorum(client, storage):
    at = utcnow() - timedelta(seconds=1)
    response = post(client, report(at=at.isoformat()))
    assert response.status_code == 200
    body = response.get_json()
    assert body["name"] == "paris probe" and body["kind"] == "agent" and body["state"] == "down"
    assert body["ok"] is False and body["reason"] == "HTTP 503"
    assert body["check_interval"] == 2 and body["quorum"] == 2
    assert body["fresh_for"] == 3 * 2 + 3  # three intervals plus the (default) probe timeout
    [stored] = storage.verdicts.latest()
    assert (stored.name, stored.kind, stored.state, stored.ok) == ("paris probe", "agent", "down", False)
    assert stored.observed_at == at and stored.received_at >= at
    assert response.headers["Cache-Control"] == "no-store"


def test_the_latest_verdict_per_name_wins_so_a_name_has_one_vote(client, storage):
    post(client, report(name="paris probe", state="up", ok=True))
    post(client, report(name="berlin probe", state="up", ok=True))
    post(client, report(name="paris probe", state="down", ok=False, reason=...))
    verdicts = {verdict.name: verdict for verdict in storage.verdicts.latest()}
    assert set(verdicts) == {"paris probe", "berlin probe"}
    assert verdicts["paris probe"].state == "down" and verdicts["paris probe"].reason is None
    assert verdicts["berlin probe"].state == "up"


def test_a_name_of_an_instance_is_not_an_agents_to_replace(client, storage):
    storage.verdicts.record("web-1:8000", "instance", "up", True, None, utcnow())
    assert_problem(post(client, report(name="web-1:8000")), 409, "names an instance")
    [stored] = storage.verdicts.latest()
    assert stored.kind == "instance" and stored.state == "up"


def test_a_reason_loses_url_secrets_and_control_characters_and_is_cut_at_the_limit(client, storage):
    secret = "connection failed: http://ops:hunter2@www.example.com/health?key=s3cr3t\nfaked log line"
    assert post(client, report(reason=secret)).status_code == 200
    [stored] = storage.verdicts.latest()
    assert stored.reason == "connection failed: http://www.example.com/health faked log line"
    post(client, report(reason="x" * 2000))
    [stored] = storage.verdicts.latest()
    assert len(stored.reason) == MAX_REASON and stored.reason.endswith("…")


@pytest.mark.parametrize(
    ("token", "status", "word"),
    [(None, 401, "no token"), ("not-the-token", 401, "wrong token"), (EXPORT_TOKEN, 403, "only read leads")],
)
def test_a_missing_or_wrong_token_is_refused_and_nothing_is_stored(client, storage, token, status, word):
    assert_problem(post(client, report(), token=token), status, word)
    assert storage.verdicts.latest() == []


@pytest.mark.parametrize(
    ("fields", "slug", "word"),
    [
        ({"votes": 3}, "unknown-fields", "unknown fields: votes"),
        ({"name": ...}, "missing-fields", "missing fields: name"),
        ({"at": ...}, "missing-fields", "missing fields: at"),
        ({"name": ""}, "bad-name", "non-empty"),
        ({"name": "   "}, "bad-name", "non-empty"),
        ({"name": 7}, "bad-name", "non-empty"),
        ({"name": "x" * 101}, "bad-name", "at most 100"),
        ({"name": "paris\nprobe"}, "bad-name", "control characters"),
        ({"name": "paris\u202eprobe"}, "bad-name", "control characters"),
        ({"state": "sideways"}, "bad-state", "state must be one of"),
        ({"state": None}, "bad-state", "state must be one of"),
        ({"ok": "yes"}, "bad-ok", "true or false"),
        ({"ok": 1}, "bad-ok", "true or false"),
        ({"reason": 42}, "bad-reason", "must be a text"),
        ({"at": "yesterday"}, "bad-time", "ISO-8601"),
        ({"at": "2026-11-30T20:00:00"}, "bad-time", "offset"),
        ({"at": 1764532800}, "bad-time", "ISO-8601"),
        ({"at": "0001-01-01T00:30:00+01:00"}, "bad-time", "ISO-8601"),
    ],
)
def test_bad_fields_are_400_problems_and_nothing_is_stored(client, storage, fields, slug, word):
    body = assert_problem(post(client, report(**fields)), 400, word)
    assert body["type"].endswith(slug)
    assert storage.verdicts.latest() == []


def test_a_time_beyond_the_allowed_skew_is_refused_and_one_within_it_is_taken(client, storage):
    ahead = assert_problem(post(client, report(at=(utcnow() + timedelta(minutes=5)).isoformat())), 400, "NTP")
    assert ahead["type"].endswith("time-in-future")
    assert storage.verdicts.latest() == []
    assert post(client, report(at=(utcnow() + timedelta(seconds=10)).isoformat())).status_code == 200


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", '"down"', b"\xff\xfe{}", "", "[" * (MAX_BODY - 1)])
def test_a_body_that_is_not_a_json_object_is_a_400_problem(client, storage, data):
    assert_problem(post(client, data=data), 400, "JSON object")
    assert storage.verdicts.latest() == []


def test_an_oversized_body_is_a_413_problem_before_it_is_read(client, storage):
    padded = json.dumps(report(reason="x" * MAX_BODY))
    assert_problem(post(client, data=padded), 413, f"at most {MAX_BODY} bytes")
    assert storage.verdicts.latest() == []


def test_other_methods_on_verdicts_are_405_problems(client):
    response = client.get(ROUTE, headers={"Authorization": f"Bearer {TOKEN}"})
    assert_problem(response, 405, "POST")
    assert response.headers["Allow"] == "POST"
