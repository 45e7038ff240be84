"""What the team sees of the follow-up mail: the queue on the dashboard with its send-now button, in the status
document (admin, API, `fallback status`), and a claim left by a dead sender taken up again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import bench_module, csrf_token, log_in
from mailserver import FOLLOWUP_DELAY
from openapi_check import check_answer
from test_followup import outage, run, sender_for

from fallback.core.settings import Settings
from fallback.outbound.followup import CLAIM_SECONDS
from fallback.serving.app import create_app
from fallback.storage import open_storage
from fallback.team.openapi import document

BACKENDS = ["sqlite", "postgres"]
pytestmark = pytest.mark.slow  # aiosmtpd on 127.0.0.1
API_TOKEN = "api-token-for-follow-up-tests"


@pytest.fixture
def team_client(mail_env, mail_storage):
    app = create_app(Settings.from_env({**mail_env, "FALLBACK_API_TOKEN": API_TOKEN}), mail_storage)
    client = app.test_client()
    log_in(client)
    return client


def refused_once(mail_storage, clock, smtp_server, sender) -> None:
    """Two leads asked; the server refuses the first try with a 451, then the other is sent."""
    outage(mail_storage, clock, "anne@example.org", "paul@example.org")
    smtp_server.mailbox.answers = ["451 4.3.0 try again later"]
    run(sender, clock, FOLLOWUP_DELAY)


def test_the_dashboard_shows_the_queue_and_its_last_error(team_client, mail_env, mail_storage, clock, smtp_server):
    refused_once(mail_storage, clock, smtp_server, sender_for(mail_env, mail_storage))
    html = team_client.get("/_fallback/admin").get_data(as_text=True)
    assert 'data-status="followup-pending">1<' in html and 'data-status="followup-sent">1<' in html
    assert 'data-status="followup-failed">0<' in html
    assert "Last error: the mail server refused the message for now (a temporary error)" in html
    assert "<code>451 4.3.0 try again later</code>" in html  # the server's own words, behind a disclosure
    assert 'action="/_fallback/admin/followup/send"' in html


def test_the_send_now_button_makes_a_message_waiting_for_its_retry_go_out(
    team_client, mail_env, mail_storage, clock, smtp_server
):
    sender = sender_for(mail_env, mail_storage)
    refused_once(mail_storage, clock, smtp_server, sender)
    assert run(sender, clock, 1) == 0  # backing off
    token = csrf_token(team_client.get("/_fallback/admin").get_data(as_text=True))
    response = team_client.post("/_fallback/admin/followup/send", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith("#followup")
    assert run(sender, clock) == 1 and len(smtp_server.mailbox.messages) == 2


def test_the_send_now_button_needs_a_session_and_its_csrf_token(mail_env, mail_storage, clock, smtp_server):
    refused_once(mail_storage, clock, smtp_server, sender_for(mail_env, mail_storage))
    client = create_app(Settings.from_env(mail_env), mail_storage).test_client()
    assert client.post("/_fallback/admin/followup/send").status_code == 403
    log_in(client)
    assert client.post("/_fallback/admin/followup/send", data={"csrf_token": "forged"}).status_code == 400
    assert mail_storage.outbox.due("followup") is False


def test_the_status_document_carries_the_queue_and_fits_the_apis_schema(
    team_client, mail_env, mail_storage, clock, smtp_server
):
    refused_once(mail_storage, clock, smtp_server, sender_for(mail_env, mail_storage))
    expected = {"pending": 1, "sent": 1, "failed": 0, "last_error": "451 4.3.0 try again later"}
    assert team_client.get("/_fallback/admin/status.json").get_json()["followup"] == expected
    response = team_client.get("/_fallback/api/v1/status", headers={"Authorization": f"Bearer {API_TOKEN}"})
    check_answer(document(), "GET", "/status", response)
    assert response.get_json()["followup"] == expected


def test_without_smtp_the_status_document_has_no_queue(env, storage):
    client = create_app(Settings.from_env(env), storage).test_client()
    log_in(client)
    status = client.get("/_fallback/admin/status.json").get_json()
    assert "followup" not in status
    assert "Follow-up mail" not in client.get("/_fallback/admin").get_data(as_text=True)


def test_fallback_status_prints_the_queue_from_the_document(
    runner, mail_env, mail_storage, clock, smtp_server, monkeypatch
):
    from fallback.cli import cli

    refused_once(mail_storage, clock, smtp_server, sender_for(mail_env, mail_storage))
    for name, value in mail_env.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(cli, ["status"])
    line = "follow-up mail: 1 pending, 1 sent, 0 failed, last error: 451 4.3.0 try again later"
    assert line in result.output, result.output


def test_a_message_claimed_by_a_sender_that_died_goes_out_once_its_hold_lapses(
    mail_env, mail_storage, clock, smtp_server
):
    outage(mail_storage, clock, "anne@example.org")
    clock.now += timedelta(seconds=FOLLOWUP_DELAY)
    dead = sender_for(mail_env, mail_storage)
    dead.queue_after_recovery()
    [item], _wait = mail_storage.outbox.claim("followup", CLAIM_SECONDS, 1)  # claimed, then killed before sending
    assert item.lead_id is not None
    restarted = sender_for(mail_env, open_storage(mail_env["FALLBACK_DATABASE"]))
    restarted.storage.db.clock = clock
    assert run(restarted, clock, CLAIM_SECONDS - 1) == 0
    assert run(restarted, clock, 1) == 1 and [m["To"] for m in smtp_server.mailbox.messages] == ["anne@example.org"]


@pytest.mark.sqlite_only("the bench runs on SQLite")
def test_the_bench_row_counts_every_message_the_local_server_accepted(tmp_path):
    with bench_module("followup") as bench:
        figures = bench.run(tmp_path, "1000/second", 5)
        (row,) = bench.rows({"default": figures, "unlimited": figures})[:1]
    assert figures["messages"] == 5 and figures["per_second"] > 0
    assert row[0].startswith("follow-up mail to a local SMTP server") and row[1].endswith(" msg/s")
