"""`/_fallback/metrics`: its tokens, every series read back with prometheus_client's own parser, and the totals of
a real `fallback serve` over two workers, one of them killed."""

from __future__ import annotations

import math
import os
import subprocess
from datetime import timedelta

import pytest
from helpers import FixedClock, contact_fields
from prometheus_client.parser import text_string_to_metric_families
from webhook_receiver import SECRET

from fallback.checking.checker import Checker
from fallback.checking.probe import ProbeResult
from fallback.core.counters import Metrics
from fallback.core.settings import Settings
from fallback.outbound.messages import dispatch
from fallback.serving.app import create_app
from fallback.serving.server import remove_stale_counts
from fallback.storage import NewLead, open_storage
from fallback.team.metrics import WEBHOOK_RESULTS, DatabaseCollector

BACKENDS = ["sqlite", "postgres"]
TOKEN = "metrics-token-for-the-test-suite"
API_TOKEN = "api-token-for-the-test-suite"
PATH = "/_fallback/metrics"
MAIN = "http://127.0.0.1:9/"


@pytest.fixture
def env(env):
    """The shared test environment, with the metrics and API tokens set."""
    return {**env, "FALLBACK_METRICS_TOKEN": TOKEN, "FALLBACK_API_TOKEN": API_TOKEN}


def scrape(client, token: str = TOKEN) -> dict[str, float]:
    """Every sample of one scrape, by name and labels (`name{label="value"}`), parsed by prometheus_client."""
    response = client.get(PATH, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return samples(response.get_data(as_text=True))


def samples(text: str) -> dict[str, float]:
    """The samples of a text exposition, keyed `name{label="value",...}` (labels sorted)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            found[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return found


def test_the_route_answers_404_when_neither_the_metrics_nor_the_api_token_is_set(env, storage):
    env = {**env, "FALLBACK_METRICS_TOKEN": "", "FALLBACK_API_TOKEN": ""}
    client = create_app(Settings.from_env(env), storage).test_client()
    assert client.get(PATH, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer "])
def test_a_missing_or_wrong_token_is_a_401_asking_for_a_bearer(client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get(PATH, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "fallback_" not in response.get_data(as_text=True)


@pytest.mark.parametrize("token", [TOKEN, API_TOKEN])
def test_the_metrics_token_and_the_api_token_both_open_it_in_prometheus_text_format(client, token):
    response = client.get(PATH, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"  # the text format's type, as prometheus_client names it
    assert response.headers["Cache-Control"] == "no-store"


def test_the_api_token_alone_opens_it(env, storage):
    client = create_app(Settings.from_env({**env, "FALLBACK_METRICS_TOKEN": ""}), storage).test_client()
    assert "fallback_up" in scrape(client, API_TOKEN)


@pytest.mark.usefixtures("still_clock")
def test_wrong_tokens_spend_the_api_tokens_budget_then_wait(client):
    # The API token opens this route: guessing here must cost what guessing at the API costs.
    answers = [client.get(PATH, headers={"Authorization": "Bearer guess"}).status_code for _ in range(11)]
    assert answers == [401] * 10 + [429]
    assert client.get("/_fallback/api/v1/status", headers={"Authorization": "Bearer guess"}).status_code == 429


def test_every_series_the_spec_names_is_there_with_its_type(client):
    response = client.get(PATH, headers={"Authorization": f"Bearer {TOKEN}"})
    families = {family.name: family for family in text_string_to_metric_families(response.get_data(as_text=True))}
    expected = {
        "fallback_up": "gauge",
        "fallback_probes": "counter",
        "fallback_probe_duration_seconds": "histogram",
        "fallback_flips": "counter",
        "fallback_leads": "counter",
        "fallback_followup_mails": "counter",
        "fallback_webhook_deliveries": "counter",
        "fallback_checker_heartbeat_age_seconds": "gauge",
        "fallback_checker_heartbeat_max_age_seconds": "gauge",
    }
    assert {name: families[name].type for name in expected} == expected
    found = scrape(client)
    for result in ("accepted", "spam", "invalid", "limited"):
        assert found[f'fallback_leads_total{{result="{result}"}}'] == 0
    assert found["fallback_flips_total"] == 0 and found["fallback_probe_duration_seconds_count"] == 0


def test_fallback_up_is_1_while_visitors_are_redirected_and_0_while_they_get_the_page(client, storage):
    assert scrape(client)["fallback_up"] == 1  # no verdict yet: served like up
    storage.flag.set_mode("down", reason="test")
    assert scrape(client)["fallback_up"] == 0
    storage.flag.set_mode("auto")
    storage.flag.flip("unknown", "down", "HTTP 503")
    assert scrape(client)["fallback_up"] == 0


def test_each_contact_post_is_counted_once_by_its_outcome(client, down):
    client.post("/_fallback/contact", data=contact_fields(client))  # the lean path stores it
    multipart = contact_fields(client, email="multi@example.org")
    assert client.post("/_fallback/contact", data=multipart, content_type="multipart/form-data").status_code == 303
    client.post("/_fallback/contact", data=contact_fields(client, email="bot@example.org", website="x"))
    assert client.post("/_fallback/contact", data=contact_fields(client, email="nope")).status_code == 400
    cross_site = {"Sec-Fetch-Site": "cross-site"}
    assert client.post("/_fallback/contact", data=contact_fields(client), headers=cross_site).status_code == 403
    found = scrape(client)
    counted = {result: found[f'fallback_leads_total{{result="{result}"}}'] for result in ("accepted", "spam")}
    assert counted == {"accepted": 2, "spam": 1}
    assert found['fallback_leads_total{result="invalid"}'] == 2


@pytest.mark.usefixtures("still_clock")
def test_a_post_turned_away_by_the_rate_limit_is_counted_as_limited(env, storage):
    app = create_app(Settings.from_env({**env, "FALLBACK_RATE_LIMIT": "2/minute"}), storage)
    client = app.test_client()
    storage.flag.set_mode("down", reason="test")
    statuses = [client.post("/_fallback/contact", data=contact_fields(client)).status_code for _ in range(3)]
    assert statuses == [303, 303, 429]
    found = scrape(client)
    assert (found['fallback_leads_total{result="accepted"}'], found['fallback_leads_total{result="limited"}']) == (2, 1)


def test_the_checker_counts_its_probes_their_durations_and_its_flips(database):
    settings = Settings(main_url=MAIN, check_urls=(MAIN,), database=database, check_interval=5.0, fall=1, rise=1)
    storage = open_storage(settings.database, FixedClock())
    metrics = Metrics(collectors=[DatabaseCollector(storage, settings)])
    answers = iter([[ProbeResult(MAIN, False, 0.2, 503, "HTTP 503")], [ProbeResult(MAIN, True, 0.04, 200)]] * 2)

    class Runner:
        def run(self, urls, expect_text_for=None):
            return next(answers)

    checker = Checker(settings, storage, Runner(), owner="a", metrics=metrics)
    for _ in range(4):
        checker.step()
    found = samples(metrics.exposition().decode())
    assert (found['fallback_probes_total{result="ok"}'], found['fallback_probes_total{result="failed"}']) == (2, 2)
    assert found["fallback_flips_total"] == 4
    assert found["fallback_probe_duration_seconds_count"] == 4
    assert found['fallback_probe_duration_seconds_bucket{le="0.05"}'] == 2
    assert found["fallback_probe_duration_seconds_sum"] == pytest.approx(0.48)


def test_the_heartbeat_age_is_infinite_until_the_checker_beats_then_its_age(client, storage):
    found = scrape(client)
    assert math.isinf(found["fallback_checker_heartbeat_age_seconds"])
    assert found["fallback_checker_heartbeat_max_age_seconds"] == 3 * 5 + 3  # three intervals plus a timeout
    storage.checker.claim("a", 30)
    storage.checker.record_round("a", [], False, None)
    assert 0 <= scrape(client)["fallback_checker_heartbeat_age_seconds"] < 5


def test_follow_up_mails_are_counted_from_the_queue_in_the_database(client, storage):
    for email in ("a@example.org", "b@example.org", "c@example.org"):
        storage.leads.save(NewLead(email, notify=True, notify_text="tell me"))
    storage.followups.queue(storage.clock() + timedelta(seconds=1))
    [first], _ = storage.outbox.claim("followup", 60, 1)
    storage.outbox.delivered(first)
    [second], _ = storage.outbox.claim("followup", 60, 1)
    storage.outbox.failed(second, "550 no such mailbox", 550, None, False)
    found = scrape(client)
    assert found['fallback_followup_mails_total{result="sent"}'] == 1
    assert found['fallback_followup_mails_total{result="failed"}'] == 1
    assert found["fallback_followup_mails_pending"] == 1


def test_webhook_deliveries_are_counted_from_the_queue_by_how_they_ended(client, storage):
    found = scrape(client)
    assert [found[f'fallback_webhook_deliveries_total{{result="{result}"}}'] for result in WEBHOOK_RESULTS] == [0] * 4
    receivers = ["http://127.0.0.1:9/crm", "http://127.0.0.1:9/chat"]
    storage.outbox.synchronise(receivers)
    for mode in ("down", "up", "auto"):
        storage.flag.set_mode(mode)  # one delivery per receiver each
    settings = Settings.from_env({"FALLBACK_WEBHOOK_URLS": ",".join(receivers), "FALLBACK_WEBHOOK_SECRET": SECRET})
    dispatch(storage, settings)
    (crm, chat), _ = storage.outbox.claim("webhook", 60)
    storage.outbox.delivered(crm, 204)
    storage.outbox.gone(chat, "HTTP 410 Gone")
    (crm, *_), _ = storage.outbox.claim("webhook", 60)  # the chat's later ones are skipped: it is gone
    storage.outbox.failed(crm, "HTTP 400 Bad Request", 400, None, False)
    found = scrape(client)
    counted = {result: found[f'fallback_webhook_deliveries_total{{result="{result}"}}'] for result in WEBHOOK_RESULTS}
    assert counted == {"delivered": 1, "failed": 1, "gone": 1, "skipped": 2}
    assert found["fallback_webhook_deliveries_pending"] == 1


def test_a_folder_of_counts_left_by_a_killed_server_is_removed_when_the_next_one_starts(tmp_path):
    ended = subprocess.Popen(["true"])
    ended.wait()  # reaped: its pid names no process now
    stale, live, other = (
        tmp_path / f"fallback-metrics-{ended.pid}-x",
        tmp_path / f"fallback-metrics-{os.getpid()}-y",
        tmp_path / "fallback-metrics-cost-z",
    )
    for folder in (stale, live, other):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"")
    remove_stale_counts(tmp_path)
    assert (stale.exists(), live.exists(), other.exists()) == (False, True, True)
