"""fallback.smtp against a real aiosmtpd on 127.0.0.1: STARTTLS when offered, credentials never in clear."""

from __future__ import annotations

import ssl
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from helpers import self_signed_certificate
from mailserver import Mailbox
from procs import free_port

from fallback.outbound import smtp


def message() -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "shop@example.org", "paul@example.org", "We're back"
    mail.set_content("Hello")
    return mail


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, made by openssl for this module."""
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    return key, cert


class Logins:
    """An authenticator that accepts one user and remembers whether each log-in came over TLS."""

    def __init__(self):
        self.seen: list[tuple[str, bool]] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        self.seen.append((auth_data.login.decode(), session.ssl is not None))
        return AuthResult(success=auth_data.login == b"shop" and auth_data.password == b"s3cret")


def serve(mailbox: Mailbox, logins: Logins, tls: ssl.SSLContext | None) -> tuple[Controller, int]:
    port = free_port()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, tls_context=tls, require_starttls=tls is not None,
        authenticator=logins, auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    return controller, port


def test_credentials_are_never_sent_to_a_server_without_starttls():
    mailbox, logins = Mailbox(), Logins()
    controller, port = serve(mailbox, logins, tls=None)
    try:
        with pytest.raises(smtp.MailRefused, match="never sent in clear") as refused:
            smtp.send(f"smtp://shop:s3cret@127.0.0.1:{port}", message(), timeout=5)
    finally:
        controller.stop()
    assert refused.value.permanent and logins.seen == [] and mailbox.messages == []


def test_it_upgrades_with_starttls_before_logging_in(certificate, monkeypatch):
    key, cert = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(smtp, "tls_context", lambda: client_tls)  # trust this test's own certificate
    mailbox, logins = Mailbox(), Logins()
    controller, port = serve(mailbox, logins, tls=server_tls)
    accepted = []
    try:
        smtp.send(f"smtp://shop:s3cret@127.0.0.1:{port}", message(), accepted=lambda: accepted.append(1), timeout=5)
    finally:
        controller.stop()
    assert logins.seen == [("shop", True)] and accepted == [1]
    assert [mail["Subject"] for mail in mailbox.messages] == ["We're back"]
