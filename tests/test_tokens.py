"""The one guard of every token (API, metrics, export, the probe agents' verdicts): wrong ones limited and logged,
right ones never locked out by others' failures, short ones refused at start-up."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from helpers import FixedClock

from fallback.core.settings import TOKEN_RECIPE, ConfigError, Settings
from fallback.team import logins

BACKENDS = ["sqlite", "postgres"]
API_TOKEN = "api-token-of-the-token-guard-tests"
EXPORT_TOKEN = "export-token-of-the-token-guard-tests"
METRICS_TOKEN = "metrics-token-of-the-token-guard-tests"
EXPORT = "/_fallback/admin/export.csv"
VERDICT = {
    "name": "paris probe",
    "state": "up",
    "ok": True,
    "reason": "200 in 80 ms",
    "at": "2026-11-28T20:00:00+00:00",
}


@pytest.fixture
def env(env):
    """The shared test environment, with every token set."""
    return {
        **env,
        "FALLBACK_API_TOKEN": API_TOKEN,
        "FALLBACK_EXPORT_TOKEN": EXPORT_TOKEN,
        "FALLBACK_METRICS_TOKEN": METRICS_TOKEN,
    }


def from_address(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_the_export_token_cannot_be_guessed_without_limit(app, caplog):
    guesser = from_address(app, "198.51.100.20")
    with caplog.at_level(logging.WARNING, logger="fallback.tokens"):
        statuses = [guesser.get(EXPORT, headers=bearer(f"guess-{n}")).status_code for n in range(12)]
    assert statuses == [401] * 10 + [429] * 2
    # Past its budget the address learns nothing more: the right token is refused too.
    refused = guesser.get(EXPORT, headers=bearer(EXPORT_TOKEN))
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 15 * 60
    assert "this address" in refused.get_data(as_text=True)
    assert from_address(app, "198.51.100.21").get(EXPORT, headers=bearer(EXPORT_TOKEN)).status_code == 200
    assert "wrong token from 198.51.100.20" in caplog.text and "guess-" not in caplog.text


def test_every_token_route_shares_one_failure_budget(app):
    guesser = from_address(app, "198.51.100.30")
    for route in ("/_fallback/api/v1/status", "/_fallback/metrics", EXPORT) * 3 + (EXPORT,):
        assert guesser.get(route, headers=bearer("a-guess")).status_code == 401
    assert guesser.get("/_fallback/metrics", headers=bearer("a-guess")).status_code == 429
    assert guesser.get("/_fallback/api/v1/status", headers=bearer("a-guess")).status_code == 429


def test_a_request_without_a_token_spends_no_budget(app):
    visitor = from_address(app, "198.51.100.40")
    for _ in range(15):
        assert visitor.get(EXPORT).status_code == 401
    assert visitor.get(EXPORT, headers=bearer(EXPORT_TOKEN)).status_code == 200


def test_others_failures_never_lock_out_the_right_tokens(app, storage, monkeypatch):
    monkeypatch.setattr(logins, "GLOBAL_BUDGET", ((20, 15 * 60),))
    storage.db.clock = FixedClock(datetime(2026, 11, 28, 20, 0, tzinfo=UTC))
    # Ten wrong tokens from each of many networks spend the global budget.
    for network in range(1, 4):
        attacker = from_address(app, f"2001:db8:{network:x}::1")
        for _ in range(10):
            attacker.get("/_fallback/api/v1/status", headers=bearer("a-guess"))
    late = from_address(app, "2001:db8:ff::1").get("/_fallback/api/v1/status", headers=bearer("a-guess"))
    assert late.status_code == 429 and "many addresses" in late.get_json()["detail"]
    assert "this address" not in late.get_json()["detail"]
    team = from_address(app, "192.0.2.50")
    assert team.get("/_fallback/api/v1/status", headers=bearer(API_TOKEN)).status_code == 200
    assert team.get("/_fallback/metrics", headers=bearer(METRICS_TOKEN)).status_code == 200
    assert team.get("/_fallback/metrics", headers=bearer(API_TOKEN)).status_code == 200
    assert team.get(EXPORT, headers=bearer(EXPORT_TOKEN)).status_code == 200
    assert team.get("/_fallback/api/v1/leads", headers=bearer(EXPORT_TOKEN)).status_code == 200
    assert team.post("/_fallback/api/v1/verdicts", json=VERDICT, headers=bearer(API_TOKEN)).status_code == 200


def test_right_tokens_spend_nothing(app):
    team = from_address(app, "192.0.2.60")
    for _ in range(15):
        assert team.get("/_fallback/metrics", headers=bearer(METRICS_TOKEN)).status_code == 200
        assert team.get(EXPORT, headers=bearer(EXPORT_TOKEN)).status_code == 200


@pytest.mark.parametrize("variable", ["FALLBACK_EXPORT_TOKEN", "FALLBACK_API_TOKEN", "FALLBACK_METRICS_TOKEN"])
def test_a_token_under_24_characters_stops_start_up_saying_how_to_make_one(env, variable):
    short = "exp7-23-characters-long"
    assert len(short) == 23
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**env, variable: short})
    message = str(raised.value)
    assert message.startswith(variable) and TOKEN_RECIPE in message and short not in message
