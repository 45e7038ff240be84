"""The spam folder: suspected spam is listed with its reason, and "not spam" makes it a lead everywhere."""

from __future__ import annotations

import pytest
from helpers import csrf_token, lead_created_events, log_in
from openapi_check import check_answer

from fallback.cli import cli
from fallback.core.settings import Settings
from fallback.serving.app import create_app
from fallback.storage import NewLead
from fallback.storage.records import LeadCounts
from fallback.team.openapi import document

BACKENDS = ["sqlite", "postgres"]
TOKEN = "spam-folder-api-token-for-the-tests-0123"
EXPORT_TOKEN = "spam-folder-export-token-for-tests-4567"
PREFIX = "/_fallback/api/v1"
WEBHOOK_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3OA=="
# Nothing listens there: queued deliveries are only read back from the table.
HOOKS = {"FALLBACK_WEBHOOK_URLS": "http://127.0.0.1:9/hooks", "FALLBACK_WEBHOOK_SECRET": WEBHOOK_SECRET}


def fast_typist(email: str = "fast@example.org", message: str = "Do you ship to Lyon?") -> NewLead:
    """A real customer the time trap held back."""
    return NewLead(email, name="Fast Typist", message=message, consent=True, spam_reason="sent too fast (1.2 s)")


@pytest.fixture
def env(env):
    return {
        **env,
        "FALLBACK_API_TOKEN": TOKEN,
        "FALLBACK_EXPORT_TOKEN": EXPORT_TOKEN,
        **HOOKS,
    }


def test_suspected_spam_is_listed_with_its_reason_and_message_and_sends_nothing(storage):
    storage.leads.save(fast_typist())
    [held] = storage.spam.list()
    assert (held["email"], held["spam_reason"], held["message"]) == (
        "fast@example.org",
        "sent too fast (1.2 s)",
        "Do you ship to Lyon?",
    )
    assert storage.leads.count() == LeadCounts(leads=0, spam=1)
    assert lead_created_events(storage, HOOKS) == []


def test_not_spam_makes_a_new_lead_that_counts_is_exported_and_fires_lead_created(storage):
    storage.leads.save(fast_typist())
    assert storage.spam.keep("FAST@example.org") == 1
    assert storage.leads.count() == LeadCounts(leads=1, spam=0)
    assert storage.spam.list() == []
    [exported] = list(storage.leads.iter())
    assert exported["email"] == "fast@example.org"
    assert [sent["message"] for sent in exported["messages"]] == ["Do you ship to Lyon?"]
    [created] = lead_created_events(storage, HOOKS)
    assert (created["email"], created["message"], created["consent"]) == (
        "fast@example.org",
        "Do you ship to Lyon?",
        True,
    )


def test_not_spam_joins_the_address_s_existing_lead_with_every_message_kept_and_no_second_event(storage):
    storage.leads.save(NewLead("fast@example.org", message="First, genuine", consent=True))
    events_before = len(lead_created_events(storage, HOOKS))
    storage.leads.save(fast_typist(message="Second, held back"))
    assert storage.spam.keep("fast@example.org") == 1
    [lead] = list(storage.leads.iter())
    assert sorted(sent["message"] for sent in lead["messages"]) == ["First, genuine", "Second, held back"]
    assert lead["submissions"] == 2
    assert storage.leads.count() == LeadCounts(leads=1, spam=0)
    assert len(lead_created_events(storage, HOOKS)) == events_before


def test_keeping_an_address_without_spam_changes_nothing(storage):
    storage.leads.save(NewLead("real@example.org"))
    assert storage.spam.keep("real@example.org") == 0
    assert storage.spam.keep_one(999) is False
    assert storage.leads.count() == LeadCounts(leads=1, spam=0)


def test_the_cli_lists_the_spam_and_keeps_one(runner, storage):
    storage.leads.save(fast_typist())
    listed = runner.invoke(cli, ["spam", "list"])
    assert listed.exit_code == 0, listed.output
    assert "fast@example.org  (sent too fast (1.2 s)): 'Do you ship to Lyon?'" in listed.output
    assert "1 suspected spam" in listed.output
    kept = runner.invoke(cli, ["spam", "keep", "fast@example.org"])
    assert kept.exit_code == 0 and "kept 1 suspected spam of fast@example.org as a lead" in kept.output
    assert "no suspected spam of fast@example.org" in runner.invoke(cli, ["spam", "keep", "fast@example.org"]).output
    assert storage.leads.count() == LeadCounts(leads=1, spam=0)


def api(client, method: str, route: str, token: str = TOKEN, **kwargs):
    response = client.open(PREFIX + route, method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    check_answer(document(), method, route.split("?")[0], response)
    return response


def test_the_api_lists_the_spam_and_keeps_an_address(client, storage):
    storage.leads.save(fast_typist())
    listed = api(client, "GET", "/spam?limit=10")
    assert [held["email"] for held in listed.get_json()["spam"]] == ["fast@example.org"]
    kept = api(client, "POST", "/spam/keep", json={"email": "fast@example.org"})
    assert kept.status_code == 200 and kept.get_json() == {"email": "fast@example.org", "kept": 1}
    assert api(client, "GET", "/spam").get_json() == {"spam": []}


@pytest.mark.parametrize("body", [{}, {"email": ""}, {"email": 3}, {"email": "a@example.org", "extra": 1}])
def test_the_api_refuses_a_bad_keep_with_a_400_and_keeps_nothing(client, storage, body):
    storage.leads.save(fast_typist())
    response = api(client, "POST", "/spam/keep", json=body)
    assert response.status_code == 400
    assert storage.leads.count() == LeadCounts(leads=0, spam=1)


def test_the_export_token_cannot_read_or_rescue_spam(client, storage):
    storage.leads.save(fast_typist())
    assert api(client, "GET", "/spam", token=EXPORT_TOKEN).status_code == 403
    assert api(client, "POST", "/spam/keep", token=EXPORT_TOKEN, json={"email": "fast@example.org"}).status_code == 403


def test_the_dashboard_lists_the_spam_and_its_not_spam_button_makes_a_lead(env, storage):
    storage.leads.save(fast_typist())
    client = create_app(Settings.from_env(env), storage).test_client()
    log_in(client)
    html = client.get("/_fallback/admin").get_data(as_text=True)
    assert "sent too fast (1.2 s)" in html and "Not spam" in html
    [held] = storage.spam.list()
    assert client.post(f"/_fallback/admin/spam/{held['id']}/keep").status_code == 400  # no CSRF token
    kept = client.post(f"/_fallback/admin/spam/{held['id']}/keep", data={"csrf_token": csrf_token(html)})
    assert kept.status_code == 303
    assert storage.leads.count() == LeadCounts(leads=1, spam=0)
    again = client.post(f"/_fallback/admin/spam/{held['id']}/keep", data={"csrf_token": csrf_token(html)})
    assert again.status_code == 404
