"""The admin's public notice: set from the CLI, the API or the dashboard, shown on the page as plain text."""

from __future__ import annotations

import pytest
from helpers import csrf_token, log_in
from openapi_check import check_answer

from fallback.cli import cli
from fallback.team.modes import MAX_NOTICE
from fallback.team.openapi import document

BACKENDS = ["sqlite", "postgres"]
TOKEN = "notice-api-token-for-the-tests-0123456789"
PREFIX = "/_fallback/api/v1"


@pytest.fixture
def env(env):
    return {**env, "FALLBACK_API_TOKEN": TOKEN}


def put_notice(client, body, token: str | None = TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.put(PREFIX + "/notice", json=body, headers=headers)
    check_answer(document(), "PUT", "/notice", response)
    return response


def page(client) -> str:
    response = client.get("/somewhere", headers={"Accept": "text/html"})
    assert response.status_code == 503
    return response.get_data(as_text=True)


def test_a_notice_set_through_the_api_is_shown_on_the_page_as_plain_text(client, down):
    assert 'class="notice"' not in page(client)
    response = put_notice(client, {"text": "  Back at 21:30 <b>sharp</b>  "})
    assert response.status_code == 200 and response.get_json() == {"notice": "Back at 21:30 <b>sharp</b>"}
    html = page(client)
    assert "Back at 21:30 &lt;b&gt;sharp&lt;/b&gt;" in html and "<b>sharp</b>" not in html


def test_every_worker_renders_the_page_again_when_the_notice_changes(client, down, storage, app):
    page(client)  # the page is rendered and kept
    version = storage.flag.read().version
    storage.flag.set_notice("Back at 22:00")  # as another worker or the CLI would
    assert storage.flag.read().version == version + 1
    app.extensions["fallback"].flag.invalidate()  # what the flag's cache does by itself within half a second
    assert "Back at 22:00" in page(client)


def test_empty_text_clears_the_notice(client, down):
    put_notice(client, {"text": "Back soon"})
    assert put_notice(client, {"text": ""}).get_json() == {"notice": None}
    assert 'class="notice"' not in page(client)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"text": "x" * (MAX_NOTICE + 1)}, "281 characters long: 280 at most"),
        ({"text": "two\nlines"}, "one line of plain text"),
        ({"text": 21}, "text must be a text"),
        ({}, "text must be a text"),
        ({"text": "ok", "colour": "red"}, "unknown fields: colour"),
    ],
)
def test_a_bad_notice_is_a_400_saying_why_and_keeps_the_one_shown(client, down, body, said):
    put_notice(client, {"text": "Back at 21:30"})
    response = put_notice(client, body)
    assert response.status_code == 400 and said in response.get_json()["detail"]
    assert "Back at 21:30" in page(client)


def test_the_notice_api_needs_the_token(client, down):
    assert put_notice(client, {"text": "Set without a token"}, token=None).status_code == 401
    assert "Set without a token" not in page(client)


def test_the_public_status_document_does_not_show_the_notice_but_the_team_s_does(client, down):
    put_notice(client, {"text": "Back at 21:30"})
    assert set(client.get("/_fallback/status.json").get_json()) == {"state", "mode", "since", "retry_after"}
    status = client.get(PREFIX + "/status", headers={"Authorization": f"Bearer {TOKEN}"}).get_json()
    assert status["notice"] == "Back at 21:30"


def test_the_cli_sets_prints_and_clears_the_notice(runner, storage):
    result = runner.invoke(cli, ["notice", "Back at 21:30"])
    assert result.exit_code == 0, result.output
    assert "notice set: Back at 21:30" in result.output
    assert storage.flag.read().notice == "Back at 21:30"
    assert runner.invoke(cli, ["notice"]).output.startswith("Back at 21:30\n")
    assert "notice cleared" in runner.invoke(cli, ["notice", "--clear"]).output
    assert storage.flag.read().notice is None
    assert runner.invoke(cli, ["notice"]).output.startswith("no notice\n")


def test_the_cli_refuses_a_long_notice_in_one_line_and_keeps_the_old_one(runner, storage):
    storage.flag.set_notice("Back at 21:30")
    result = runner.invoke(cli, ["notice", "x" * 300])
    assert result.exit_code != 0
    assert "300 characters long: 280 at most" in result.output and "Traceback" not in result.output
    assert storage.flag.read().notice == "Back at 21:30"
    assert runner.invoke(cli, ["notice", "a", "--clear"]).exit_code != 0


def test_the_dashboard_sets_and_clears_the_notice_with_its_csrf_token(client, storage):
    log_in(client)
    html = client.get("/_fallback/admin").get_data(as_text=True)
    assert 'id="notice"' in html
    assert client.post("/_fallback/admin/notice", data={"notice": "Back at 21:30"}).status_code == 400
    assert storage.flag.read().notice is None
    token = csrf_token(html)
    assert (
        client.post("/_fallback/admin/notice", data={"csrf_token": token, "notice": "Back at 21:30"}).status_code == 303
    )
    assert storage.flag.read().notice == "Back at 21:30"
    assert 'value="Back at 21:30"' in client.get("/_fallback/admin").get_data(as_text=True)
    too_long = client.post("/_fallback/admin/notice", data={"csrf_token": token, "notice": "y" * 281})
    assert too_long.status_code == 400 and too_long.mimetype == "text/plain"
    assert client.post("/_fallback/admin/notice", data={"csrf_token": token, "clear": "1"}).status_code == 303
    assert storage.flag.read().notice is None
