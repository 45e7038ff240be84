"""The dashboard says what is true: what visitors get and why, beside what the checker sees of the main site; and
what a failed delivery means, in a sentence, with the library's own words behind a disclosure."""

from __future__ import annotations

import re

import pytest
import requests
from helpers import log_in
from procs import free_port

from fallback.team.plain_errors import plain_error

BACKENDS = ["sqlite", "postgres"]


def tile(html: str, label: str) -> str:
    """The text of one state tile of the dashboard, tags removed."""
    found = re.search(rf'<div class="tile"><span class="label">{label}</span>(.*?)</div>', html)
    assert found, f"no tile {label!r}"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def test_a_forced_page_while_the_site_is_up_shows_both_what_visitors_get_and_what_the_checker_sees(client, storage):
    storage.flag.flip("unknown", "up", "probes pass")
    storage.flag.set_mode("down", reason="TV at 8")
    log_in(client)
    html = client.get("/_fallback/admin").get_data(as_text=True)
    assert tile(html, "Visitors get") == "the page forced by an admin"
    assert tile(html, "Main site, as checked") == "up the forced mode wins"


def test_the_checker_s_own_down_says_the_checker_decides(client, storage):
    storage.flag.flip("unknown", "down", "connection refused")
    log_in(client)
    html = client.get("/_fallback/admin").get_data(as_text=True)
    assert tile(html, "Visitors get") == "the page the checker decides"
    assert tile(html, "Main site, as checked") == "down by the latest probes"


def real_refusal() -> str:
    """What requests says of a port where nothing listens, as a sender records it."""
    try:
        requests.post(f"http://127.0.0.1:{free_port()}/hook", timeout=5)
    except requests.RequestException as failure:
        return f"{type(failure).__name__}: {failure}"
    raise AssertionError("something listened")


@pytest.mark.parametrize(
    ("raw", "meaning"),
    [
        ("no answer within 10 s", "did not answer in time"),
        ("HTTP 401 Unauthorized: bad signature", "check the token or signing secret"),
        ("HTTP 404 Not Found", "no such address"),
        ("HTTP 503 Service Unavailable", "failed on its side"),
        ("SMTPAuthenticationError: (535, b'5.7.8 Authentication failed')", "refused the log-in"),
        ("SMTPRecipientsRefused: {'x@example.org': (550, b'no such user')}", "refused the recipient"),
        ("535 5.7.8 Authentication credentials invalid", "refused the log-in"),
        ("550 5.1.1 No such user here", "refused the recipient"),
        (
            "ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=59535): Max retries exceeded with url: /hook "
            '(Caused by NewConnectionError("Failed to establish a new connection: [Errno 111] Connection refused"))',
            "refused the connection",
        ),
        (
            "ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=550): [Errno 111] Connection refused",
            "refused the connection",
        ),
        (
            "ConnectionError: HTTPConnectionPool(host='hooks.invalid', port=80): Max retries exceeded with url: / "
            "(Caused by NameResolutionError(\"Failed to resolve 'hooks.invalid'\"))",
            "could not be found (DNS)",
        ),
        ("SSLError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", "certificate could not be verified"),
        ("ValueError: something nobody foresaw", "the details below"),
    ],
)
def test_a_recorded_failure_reads_as_a_sentence(raw, meaning):
    assert meaning in plain_error(raw)


def test_a_refused_connection_as_requests_reports_it_reads_as_refused():
    raw = real_refusal()
    assert "Errno 111" in raw or "Connection refused" in raw
    assert plain_error(raw).startswith("the receiver refused the connection")


def test_the_dashboard_shows_a_webhook_failure_as_a_sentence_with_the_raw_text_behind_a_disclosure(env, storage):
    from fallback.core.settings import Settings
    from fallback.outbound.webhooks import WebhookSender
    from fallback.serving.app import create_app

    nobody = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    env = {**env, "FALLBACK_WEBHOOK_URLS": nobody, "FALLBACK_WEBHOOK_SECRET": "whsec_" + "A" * 44}
    settings = Settings.from_env(env)
    storage.flag.set_mode("down", reason="webhook test")  # queues mode.changed to that receiver
    assert WebhookSender(settings, storage).deliver_pending() == 0  # tried once, refused, kept for a retry
    client = create_app(settings, storage).test_client()
    log_in(client)
    html = client.get("/_fallback/admin").get_data(as_text=True)
    assert "the receiver refused the connection" in html
    assert re.search(r"<details><summary>Details</summary><code>[^<]*Connection refused", html)
