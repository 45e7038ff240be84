"""A real SMTP server in the test process: aiosmtpd on 127.0.0.1, keeping what it accepts, refusing on demand."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from procs import free_port

# How long the site must stay up before the follow-up mail goes out, in the tests' mail settings (conftest.mail_env).
FOLLOWUP_DELAY = 60


class Mailbox:
    """What the server accepted; `answers` are the replies to the next DATA commands (then 250).

    With `delay`, a slow server: a message is kept the moment its DATA ends, and answered `delay` seconds later.
    """

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []  # each accepted message as the server received it, before any parsing
        self.answers: list[str] = []
        self.delay = 0.0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        with self.lock:
            if self.answers:
                return self.answers.pop(0)
            self.raw.append(envelope.original_content or envelope.content)
            self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        if self.delay:
            await asyncio.sleep(self.delay)  # the sender waits for the 250 the server already means to give
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        """The messages accepted for `address`."""
        return [message for message in self.messages if message["To"] == address]


class SMTPServer:
    """aiosmtpd on a free port of 127.0.0.1, for a `with` block."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.mailbox = Mailbox()
        self.port = free_port()
        # With `tls`, the server offers STARTTLS and requires it before a message.
        self.controller = Controller(
            self.mailbox, hostname="127.0.0.1", port=self.port, tls_context=tls, require_starttls=tls is not None
        )

    @property
    def url(self) -> str:
        """FALLBACK_SMTP_URL for this server."""
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()
