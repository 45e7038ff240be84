"""Sending one message with smtplib: STARTTLS when offered, implicit TLS for smtps://, credentials never in clear."""

from __future__ import annotations

import functools
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

TIMEOUT_SECONDS = 20.0


class MailRefused(Exception):
    """The server (or the way to it) did not take the message: `answer` says why, `permanent` for a 5xx."""

    def __init__(self, answer: str, permanent: bool):
        super().__init__(answer)
        self.answer = answer
        self.permanent = permanent


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The system's CA store and defaults, loaded once: loading them costs more than sending a message."""
    return ssl.create_default_context()


def _answer(code: int, text: bytes | str) -> MailRefused:
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return MailRefused(f"{code} {' '.join(said.split())}", permanent=500 <= code < 600)


def send(
    smtp_url: str,
    message: EmailMessage,
    accepted: Callable[[], None] = lambda: None,
    timeout: float = TIMEOUT_SECONDS,
) -> None:
    """Hand `message` to the server of `smtp_url`; `accepted` runs the instant the server took it; MailRefused."""
    parts = urlsplit(smtp_url)
    try:
        client: smtplib.SMTP
        if parts.scheme == "smtps":
            client = smtplib.SMTP_SSL(parts.hostname or "", parts.port or 465, timeout=timeout, context=tls_context())
        else:
            client = smtplib.SMTP(parts.hostname or "", parts.port or 25, timeout=timeout)
        try:
            client.ehlo()
            encrypted = parts.scheme == "smtps"
            if not encrypted and client.has_extn("starttls"):
                client.starttls(context=tls_context())
                client.ehlo()
                encrypted = True
            if parts.username:
                if not encrypted:
                    raise MailRefused("the server offers no STARTTLS: the credentials are never sent in clear", True)
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
            accepted()  # before QUIT: a kill -9 from here on may repeat this one message, never lose it
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()
    except smtplib.SMTPRecipientsRefused as error:
        code, text = next(iter(error.recipients.values()))
        raise _answer(code, text) from None
    except smtplib.SMTPResponseException as error:
        raise _answer(error.smtp_code, error.smtp_error) from None
    except (OSError, smtplib.SMTPException) as error:
        # No connection, a timeout, a hang-up, TLS: temporary, and said without the URL (it holds the password).
        raise MailRefused(f"{type(error).__name__}: {error}", permanent=False) from None
