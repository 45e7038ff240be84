"""`fallback drill`'s channels: a real test notification to an Apprise `json://` receiver on 127.0.0.1, and
SMTP against aiosmtpd with and without STARTTLS, and a refused port."""

from __future__ import annotations

import json
import ssl

from helpers import self_signed_certificate
from mailserver import SMTPServer
from procs import free_port
from webhook_receiver import Receiver

from fallback.core.settings import Settings
from fallback.drill.channels import TEST_TITLE, notify_items, smtp_item
from fallback.outbound import smtp


def test_notify_test_sends_a_real_notification_each_url_accepts():
    with Receiver() as first, Receiver() as second:
        urls = [first.url.replace("http://", "json://"), second.url.replace("http://", "json://")]
        items = notify_items(urls, send_test=True)
        posts = first.wait_for(1) + second.wait_for(1)
    assert [item.status for item in items] == ["pass", "pass"]
    assert all(json.loads(body)["title"] == TEST_TITLE for _, body in posts)
    assert items[0].name == f"notify {urls[0]}"


def test_a_notification_url_that_does_not_take_the_test_fails_with_advice():
    with Receiver([500]) as refusing:
        refused = notify_items([refusing.url.replace("http://", "json://")], send_test=True)[0]
    unreachable = notify_items([f"json://127.0.0.1:{free_port()}/hooks"], send_test=True)[0]
    for item in (refused, unreachable):
        assert item.status == "fail" and "not delivered" in item.detail and "FALLBACK_NOTIFY_URLS" in item.advice


def test_without_notify_test_nothing_is_sent_and_the_url_is_only_read():
    with Receiver() as receiver:
        item = notify_items([receiver.url.replace("http://", "json://")], send_test=False)[0]
        assert receiver.posts == []
    assert item.status == "pass" and "--notify-test" in item.detail


def test_no_notification_url_is_a_warning():
    assert notify_items([], send_test=True)[0].status == "warn"


def settings_with(smtp_url: str) -> Settings:
    return Settings.from_env(
        {
            "FALLBACK_MAIN_URL": "https://www.example.com",
            "FALLBACK_SMTP_URL": smtp_url,
            "FALLBACK_MAIL_FROM": "shop@example.org",
            "FALLBACK_PUBLIC_URL": "https://sorry.example.com",
        }
    )


def test_no_smtp_means_no_smtp_item():
    assert smtp_item(Settings.from_env({"FALLBACK_MAIN_URL": "https://www.example.com"}), 2) is None


def test_a_server_without_starttls_answers_ehlo_but_is_a_warning_and_nothing_is_sent():
    with SMTPServer() as server:
        item = smtp_item(settings_with(server.url), 5)
        assert server.mailbox.messages == []
    assert item is not None and item.status == "warn" and "EHLO ok" in item.detail and "in clear" in item.detail


def test_a_server_offering_starttls_passes_once_upgraded(tmp_path, monkeypatch):
    cert, key = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    monkeypatch.setattr(smtp, "tls_context", lambda: ssl.create_default_context(cafile=str(cert)))
    with SMTPServer(tls=server_tls) as server:
        item = smtp_item(settings_with(server.url), 5)
    assert item is not None and (item.status, item.detail) == ("pass", "EHLO, STARTTLS ok")


def test_a_refused_smtp_port_fails_without_the_password():
    item = smtp_item(settings_with(f"smtp://shop:s3cret@127.0.0.1:{free_port()}"), 2)
    assert item is not None and item.status == "fail" and "ConnectionRefusedError" in item.detail
    assert "s3cret" not in item.detail + item.name and "mail-test" in item.advice


def test_credentials_are_never_sent_to_a_server_without_starttls():
    with SMTPServer() as server:
        item = smtp_item(settings_with(f"smtp://shop:s3cret@127.0.0.1:{server.port}"), 5)
    assert item is not None and item.status == "fail" and "never sent in clear" in item.detail
