"""Sending one message with smtplib: STARTTLS when offered, implicit TLS for smtps://, credentials never in clear."""

from __future__ import annotations

import contextlib
import functools
import smtplib
import ssl
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def _session(smtp_url: str, timeout: float) -> Iterator[tuple[smtplib.SMTP, list[str]]]:
    """A connection greeted (EHLO), upgraded (STARTTLS when offered) and logged in, with the steps it took;
    the server's or the network's refusal as MailRefused, never the URL (it holds the password)."""
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
            steps = ["EHLO", "implicit TLS"] if encrypted else ["EHLO"]
            if not encrypted and client.has_extn("starttls"):
                client.starttls(context=tls_context())
                client.ehlo()
                encrypted = True
                steps.append("STARTTLS")
            if parts.username:
                if not encrypted:
                    raise MailRefused("the server offers no STARTTLS: the credentials are never sent in clear", True)
                client.login(unquote(parts.username), unquote(parts.password or ""))
                steps.append("log-in")
            yield client, steps
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


def send(
    smtp_url: str,
    message: EmailMessage,
    accepted: Callable[[], None] = lambda: None,
    timeout: float = TIMEOUT_SECONDS,
) -> None:
    """Hand `message` to the server of `smtp_url`; `accepted` runs the instant the server took it; MailRefused."""
    with _session(smtp_url, timeout) as (client, _):
        client.send_message(message)
        accepted()  # before QUIT: a kill -9 from here on may repeat this one message, never lose it


def greet(smtp_url: str, timeout: float = TIMEOUT_SECONDS) -> list[str]:
    """Connect, EHLO, STARTTLS when offered, log in when the URL has credentials, and QUIT, sending nothing;
    the steps done (`fallback drill`), or MailRefused."""
    with _session(smtp_url, timeout) as (client, steps):
        client.noop()
        return steps
