"""The drill lead of `fallback drill --rehearse`: only the installation's key marks one, and a marked lead is
kept apart: no export (CLI, admin CSV, API), no follow-up mail, no `lead.created`, no count, no metric."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import contact_fields, log_in

from fallback.cli import cli
from fallback.core.clock import utcnow
from fallback.storage.records import LeadCounts
from fallback.visitor.drillmark import FIELD, drill_key, drill_mark

BACKENDS = ["sqlite", "postgres"]
API_TOKEN = "drill-leads-api-token-0123"
METRICS_TOKEN = "drill-leads-metrics-token"
HOOK_SECRET = "whsec_" + "dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IG9mIDMyIGJ5dGVz"
DRILL_EMAIL = "drill-0123@drill.example.com"


@pytest.fixture
def env(env):
    """The shared test environment, with the API token, follow-up mail and a webhook set."""
    return {
        **env,
        "FALLBACK_API_TOKEN": API_TOKEN,
        "FALLBACK_METRICS_TOKEN": METRICS_TOKEN,
        "FALLBACK_SMTP_URL": "smtp://127.0.0.1:9",  # never used: nothing is mailed in these tests
        "FALLBACK_MAIL_FROM": "shop@example.org",
        "FALLBACK_PUBLIC_URL": "http://127.0.0.1:8000",
        "FALLBACK_WEBHOOK_URLS": "http://127.0.0.1:9/hooks",
        "FALLBACK_WEBHOOK_SECRET": HOOK_SECRET,
    }


def marked(client, secret: str, email: str = DRILL_EMAIL, mark_email: str | None = None, **extra) -> dict:
    """The fields of a drill post: a fresh form, its token marked with `secret`'s drill key for `mark_email`."""
    fields = contact_fields(client, email=email, notify="y", **extra)
    fields[FIELD] = drill_mark(drill_key(secret), fields["token"], mark_email or email)
    return fields


def post(client, fields: dict):
    response = client.post("/_fallback/contact", data=fields)
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    return response


def exported_everywhere(client, runner, storage) -> str:
    """The CLI export, the admin's CSV and the API's leads, as one text to search."""
    cli_export = runner.invoke(cli, ["export"]).output
    log_in(client)
    admin_csv = client.get("/_fallback/admin/export.csv").get_data(as_text=True)
    api = client.get("/_fallback/api/v1/leads", headers={"Authorization": f"Bearer {API_TOKEN}"}).get_data(as_text=True)
    return cli_export + admin_csv + api


def test_a_marked_lead_is_stored_as_a_drill_lead_and_kept_out_of_every_export(client, down, runner, storage):
    post(client, marked(client, "test-secret"))
    post(client, contact_fields(client, email="paul@example.org"))
    stored = storage.leads.drill_lead(DRILL_EMAIL)
    assert stored is not None and stored["spam_reason"] is None  # read back by drill_lead: a drill lead, not spam
    everything = exported_everywhere(client, runner, storage)
    assert "paul@example.org" in everything  # the exports work, and hold the visitor's lead
    assert DRILL_EMAIL not in everything
    assert storage.leads.count() == LeadCounts(leads=1, spam=0)
    assert [lead["email"] for lead in storage.leads.recent()] == ["paul@example.org"]


def test_a_drill_lead_queues_no_webhook_and_no_follow_up_mail(client, down, storage):
    post(client, marked(client, "test-secret"))
    post(client, contact_fields(client, email="paul@example.org", notify="y"))
    created = [event for event in storage.events.recent() if event.type == "lead.created"]
    assert len(created) == 1 and created[0].data["email"] == "paul@example.org"  # Paul's, not the drill's
    queued = storage.followups.queue(utcnow() + timedelta(seconds=1))
    assert queued == 1  # Paul asked, and the drill lead asked too: only Paul is mailed


def test_a_drill_lead_is_not_counted_as_accepted_in_the_metrics(client, down):
    post(client, marked(client, "test-secret"))
    text = client.get("/_fallback/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).get_data(as_text=True)
    assert 'fallback_leads_total{result="accepted"} 0.0' in text
    post(client, contact_fields(client, email="paul@example.org"))
    text = client.get("/_fallback/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).get_data(as_text=True)
    assert 'fallback_leads_total{result="accepted"} 1.0' in text


@pytest.mark.parametrize(
    "forgery",
    ["another installation's key", "a mark for another address", "a mark of another form", "a made-up mark"],
)
def test_a_visitor_without_the_key_cannot_make_a_lead_a_drill_lead(client, down, runner, storage, forgery):
    if forgery == "another installation's key":
        fields = marked(client, "not-the-secret")
    elif forgery == "a mark for another address":
        fields = marked(client, "test-secret", mark_email="someone@example.org")
    elif forgery == "a mark of another form":
        fields = marked(client, "test-secret")
        fields["token"] = contact_fields(client)["token"]  # a fresh form: the mark named the first one
    else:
        fields = {**contact_fields(client, email=DRILL_EMAIL), FIELD: "0" * 64}
    post(client, fields)
    assert storage.leads.drill_lead(DRILL_EMAIL) is None
    assert DRILL_EMAIL in exported_everywhere(client, runner, storage)  # an ordinary lead, never lost


def test_a_drill_lead_is_not_taken_for_a_bot_however_fast_it_is_sent(env, storage):
    from fallback.core.settings import Settings
    from fallback.serving.app import create_app

    app = create_app(Settings.from_env({**env, "FALLBACK_FORM_MIN_SECONDS": "30"}), storage)
    client = app.test_client()
    storage.flag.set_mode("down", reason="test")
    app.extensions["fallback"].flag.invalidate()
    post(client, marked(client, "test-secret"))
    assert storage.leads.drill_lead(DRILL_EMAIL)["spam_reason"] is None


def test_a_drill_lead_is_not_among_the_leads_an_incident_captured(client, down, storage):
    assert storage.flag.flip(storage.flag.read().state, "down", "main site refused")
    post(client, marked(client, "test-secret"))
    post(client, contact_fields(client, email="paul@example.org"))
    assert storage.flag.incidents(1)[0].leads == 1
