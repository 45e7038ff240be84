"""What the team sees of admission: the status documents, `fallback status`, the metrics, the dashboard."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from helpers import log_in
from openapi_check import check_answer
from test_metrics import scrape

from fallback.cli import cli
from fallback.core.settings import Settings
from fallback.serving.app import create_app
from fallback.team.openapi import document

BACKENDS = ["sqlite", "postgres"]
API_TOKEN = "api-token-for-tests-admission"
METRICS_TOKEN = "metrics-token-for-admission-tests"


@pytest.fixture
def env(env):
    return {
        **env,
        "FALLBACK_ADMIT_RATE": "120/minute",
        "FALLBACK_API_TOKEN": API_TOKEN,
        "FALLBACK_METRICS_TOKEN": METRICS_TOKEN,
    }


def queue_of(storage, places: int) -> None:
    storage.admission.reserve(places, time.time())


def test_the_api_status_document_holds_the_rate_in_force_and_the_queue(client, storage):
    queue_of(storage, 30)
    response = client.get("/_fallback/api/v1/status", headers={"Authorization": f"Bearer {API_TOKEN}"})
    check_answer(document(), "GET", "/status", response)
    admission = response.get_json()["admission"]
    assert admission["rate"] == 2.0 and admission["ceiling"] == 2.0 and admission["adapt"] is True
    assert 27 <= admission["waiting"] <= 30 and admission["holding"] is False


def test_without_a_rate_the_status_document_has_no_admission(env, storage):
    app = create_app(Settings.from_env({**env, "FALLBACK_ADMIT_RATE": "off"}), storage)
    response = app.test_client().get("/_fallback/api/v1/status", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert "admission" not in response.get_json()


def test_fallback_status_shows_the_rate_and_how_many_wait(runner, app, storage):
    queue_of(storage, 12)
    result = runner.invoke(cli, ["status"])
    assert result.exit_code == 0, result.output
    assert "admission: 2/second (ceiling 2/second, adapting), " in result.output and " waiting" in result.output
    as_json = json.loads(runner.invoke(cli, ["status", "--json"]).output)
    assert as_json["admission"]["rate"] == 2.0
    storage.admission.set_rate(0.0, time.time())
    assert "admission: paused while the page is shown" in runner.invoke(cli, ["status"]).output


def test_the_metrics_give_the_rate_the_queue_and_who_was_sent_on(client, app, storage):
    app.extensions["fallback"].admission.wall = lambda: time.time() + 5  # past the gate's first half second
    assert client.get("/").status_code == 302
    found = scrape(client, METRICS_TOKEN)
    assert found["fallback_admit_rate"] == 2.0
    assert found["fallback_admitted_total"] >= 1
    queue_of(storage, 40)
    assert found["fallback_waiting"] == 0 and scrape(client, METRICS_TOKEN)["fallback_waiting"] >= 35


def test_while_admission_is_off_its_rate_is_absent_from_the_metrics(env, storage):
    app = create_app(Settings.from_env({**env, "FALLBACK_ADMIT_RATE": "off"}), storage)
    found = scrape(app.test_client(), METRICS_TOKEN)
    assert "fallback_admit_rate" not in found and "fallback_waiting" not in found
    assert found["fallback_admitted_total"] == 0


def test_the_dashboard_shows_the_rate_over_the_last_minutes_next_to_the_probes(client, storage):
    now = storage.clock()
    for seconds, rate in ((-120, 2.0), (-60, 1.0), (-1, 1.5)):
        storage.admission.record(now + timedelta(seconds=seconds), rate, 7)
    storage.admission.record(now - timedelta(minutes=30), 0.2, 0)  # older than the chart shows
    log_in(client)
    html = client.get("/_fallback/admin/").get_data(as_text=True)
    assert 'id="admission"' in html and "waiting." in html
    chart = html.split('id="admission"', 1)[1]
    assert '<polyline class="rate" points="' in chart
    assert "over the last 3 checker rounds" in chart and "now 1.5 a second, lowest 1, ceiling 2; 7 waiting" in chart
    assert html.index("<h2>Probes</h2>") < html.index('id="admission"')


def test_without_a_rate_the_dashboard_has_no_admission_section(env, storage):
    app = create_app(Settings.from_env({**env, "FALLBACK_ADMIT_RATE": "off"}), storage)
    client = app.test_client()
    log_in(client)
    assert 'id="admission"' not in client.get("/_fallback/admin/").get_data(as_text=True)
