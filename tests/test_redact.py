"""Redaction: no URL's credentials or query reach a stored reason, a log line, a notification or the dashboard."""

from __future__ import annotations

import logging

import pytest
from helpers import log_in
from standin import StandIn

from fallback.checking.checker import Checker
from fallback.checking.probe import ProbeResult, probe
from fallback.core.redact import UNPARSABLE, redact_text, redact_url
from fallback.core.settings import ConfigError, Settings
from fallback.outbound.notify import NotificationSender

BACKENDS = ["sqlite", "postgres"]
SECRETS = ("ops", "hunter2", "key=", "s3cr3t")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://ops:hunter2@10.0.3.7:8080/health?key=s3cr3t", "http://10.0.3.7:8080/health"),
        ("https://ops@example.com/?token=1#top", "https://example.com/"),
        ("https://www.example.com", "https://www.example.com"),
        ("https://www.example.com/a/b", "https://www.example.com/a/b"),
        ("http://u:p@[2001:db8::1]:8443/x?y", "http://[2001:db8::1]:8443/x"),
        ("http://user:p%40ss@host/", "http://host/"),
        ("http://ops:hunter2@host:notaport/?key=s3cr3t", UNPARSABLE),
        ("http://[::1/?key=s3cr3t", UNPARSABLE),
    ],
)
def test_a_redacted_url_keeps_scheme_host_port_and_path_only(url, shown):
    assert redact_url(url) == shown
    assert redact_url(shown) == shown


def test_a_library_message_quoting_the_url_in_pieces_loses_every_secret():
    url = "http://ops:hunter2@10.0.3.7:8080/health?key=s3cr3t"
    message = (
        "HTTPConnectionPool(host='10.0.3.7', port=8080): Max retries exceeded with url: /health?key=s3cr3t "
        f"(Caused by auth ops:hunter2@ for {url})"
    )
    text = redact_text(message, url)
    assert not any(secret in text for secret in ("hunter2", "s3cr3t"))
    assert "/health" in text and "http://10.0.3.7:8080/health" in text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://h/p?key=s3cr3t: refused", "http://h/p: refused"),
        ("http://ops:hunter2@h:8080/p?key=s3cr3t#top: refused", "http://h:8080/p: refused"),
        ("GET http://h/p?key=s3cr3t, then http://h/q#frag.", "GET http://h/p, then http://h/q."),
        ("(for http://h/p?key=s3cr3t); retrying!", "(for http://h/p); retrying!"),
        ("http://h/p?key=s3cr3t", "http://h/p"),
        ("http://h/p: refused", "http://h/p: refused"),
        ("http://h:8080: refused", "http://h:8080: refused"),
    ],
)
def test_the_punctuation_right_after_a_redacted_url_stays_in_the_text(text, shown):
    assert redact_text(text) == shown


def test_a_probe_result_is_redacted_as_it_is_made():
    result = ProbeResult("http://ops:hunter2@127.0.0.1:9/h?key=s3cr3t", False, 0.1, None, "failed: hunter2 s3cr3t")
    assert result.url == "http://127.0.0.1:9/h" and "hunter2" not in result.reason and "s3cr3t" not in result.reason


def test_a_bad_check_url_stops_start_up_without_echoing_its_password():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"FALLBACK_CHECK_URLS": "http://ops:hunter2@host:notaport/?key=s3cr3t"})
    assert "hunter2" not in str(raised.value) and "s3cr3t" not in str(raised.value)


class Capture:
    """A notifier that keeps what it was asked to send."""

    def __init__(self):
        self.sent = []

    def send(self, title, body):
        self.sent.append(f"{title}\n{body}")
        return True


@pytest.mark.parametrize("behaviour", ["error", "refused"])
def test_an_outage_probed_through_a_url_with_credentials_never_shows_them(env, storage, app, client, caplog, behaviour):
    caplog.set_level(logging.INFO)
    with StandIn() as site:
        leaky = site.url.rstrip("/").replace("http://", "http://ops:hunter2@") + "/health?key=s3cr3t"
        settings = Settings.from_env(
            {
                **env,
                "FALLBACK_CHECK_URLS": leaky,
                "FALLBACK_FALL": "1",
                "FALLBACK_CHECK_TIMEOUT": "2",
                "FALLBACK_MAX_LATENCY": "2",
            }
        )
        if behaviour == "refused":
            site.stop()
        else:
            site.behaviour = "error"
        assert not probe(leaky, 2).ok
        checker = Checker(settings, storage)
        checker.step()
    assert storage.flag.read().state == "down"
    notifier = Capture()
    announcing = Settings.from_env({**env, "FALLBACK_NOTIFY_URLS": "json://127.0.0.1:9/hook"})
    assert NotificationSender(announcing, storage, notifier).deliver_pending() == 1
    log_in(client)
    shown = {
        "incident reason": storage.flag.incidents(1)[0].reason,
        "flag reason": storage.flag.read().state_reason,
        "stored probes": repr(storage.checker.recent_probes(5)),
        "log": caplog.text,
        "notification": notifier.sent[0],
        "dashboard": client.get("/_fallback/admin").get_data(as_text=True),
        "admin status": client.get("/_fallback/admin/status.json").get_data(as_text=True),
    }
    assert "/health" in shown["incident reason"] and "main site down" in shown["log"]
    for where, text in shown.items():
        for secret in ("hunter2", "s3cr3t"):
            assert secret not in text, f"{secret} in the {where}"
