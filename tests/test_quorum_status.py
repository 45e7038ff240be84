"""What the admin, the API and `fallback status` show of the quorum, and what the public status never does."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from helpers import log_in
from openapi_check import check_answer

from fallback.cli import cli
from fallback.core.clock import utcnow
from fallback.team.openapi import document

BACKENDS = ["sqlite", "postgres"]
TOKEN = "api-token-for-the-test-suite"


@pytest.fixture
def env(env):
    """The shared test environment with a quorum of two and the API on."""
    return {**env, "FALLBACK_QUORUM": "2", "FALLBACK_API_TOKEN": TOKEN}


@pytest.fixture
def split(storage):
    """Two vantage points that disagree: one instance says down, one agent says up; the state is up."""
    storage.flag.flip("unknown", "up", "first verdict")
    now = utcnow()
    storage.verdicts.record("web-1:8000", "instance", "down", False, "http://127.0.0.1:9/: connection refused", now)
    storage.verdicts.record("eu probe", "agent", "up", True, "all 1 check URL answered (slowest 40 ms)", now)
    return storage


def test_the_api_status_says_the_quorum_is_missing_and_who_says_what(client, split):
    response = client.get("/_fallback/api/v1/status", headers={"Authorization": f"Bearer {TOKEN}"})
    check_answer(document(), "GET", "/status", response)
    quorum = response.get_json()["quorum"]
    assert quorum["required"] == 2 and not quorum["met"] and not quorum["unreachable"]
    assert (
        quorum["summary"]
        == "quorum missing: 1 of 2 fresh vantage points say down (web-1:8000), 1 up (eu probe); 2 needed"
    )
    assert [(p["name"], p["kind"], p["state"], p["fresh"]) for p in quorum["vantage_points"]] == [
        ("eu probe", "agent", "up", True),
        ("web-1:8000", "instance", "down", True),
    ]


def test_the_public_status_gains_nothing_from_a_quorum(client, split):
    assert set(client.get("/_fallback/status.json").get_json()) == {"state", "mode", "since", "retry_after"}


def test_the_dashboard_lists_the_vantage_points_and_alerts_of_an_unreachable_quorum(client, split, settings, app):
    log_in(client)
    page = client.get("/_fallback/admin").get_data(as_text=True)
    assert "Quorum missing (2 must agree)" in page and "web-1:8000" in page and "eu probe" in page
    assert "ever reported" not in page
    split.verdicts.forget("eu probe")
    page = client.get("/_fallback/admin").get_data(as_text=True)
    assert "FALLBACK_QUORUM is 2, but only 1 vantage point ever reported" in page


def test_fallback_status_shows_the_quorum_and_each_vantage_point(runner, split):
    text = runner.invoke(cli, ["status"]).output
    assert "quorum missing: 1 of 2 fresh vantage points say down (web-1:8000), 1 up (eu probe); 2 needed" in text
    assert re.search(r"\n  web-1:8000 \(instance\): down, [\d.]+s ago: http://127.0.0.1:9/: connection refused\n", text)
    assert json.loads(runner.invoke(cli, ["status", "--json"]).output)["quorum"]["required"] == 2


def test_a_stale_vantage_point_is_shown_as_such(runner, split):
    split.db.clock = lambda: utcnow() - timedelta(minutes=5)  # web-2's report reached the database 5 minutes ago
    split.verdicts.record("web-2:8000", "instance", "up", True, "ok", utcnow())
    text = runner.invoke(cli, ["status"]).output
    assert re.search(r"web-2:8000 \(instance\): up, 30\d(\.\d)?s ago, stale: ok", text)


def test_with_a_quorum_of_one_the_documents_have_no_quorum(client, storage, env, monkeypatch):
    monkeypatch.setitem(env, "FALLBACK_QUORUM", "1")
    from fallback.core.settings import Settings
    from fallback.serving.app import create_app

    plain = create_app(Settings.from_env(env), storage).test_client()
    response = plain.get("/_fallback/api/v1/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert "quorum" not in response.get_json()
