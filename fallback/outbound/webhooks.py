"""The webhook sender: each event posted to each FALLBACK_WEBHOOK_URLS, signed per Standard Webhooks.

The transport of the outbox's `webhook` kind (outbound.outbox): one message per (event, receiver), its body and
`webhook-id` made once (outbound.messages), claimed before it is posted, so no two senders post it at once, and
one at a time per receiver, so each receives its events in order. Delivery is at least once: a post the receiver
took but whose answer was lost, or a sender killed mid-post, is posted again with the same `webhook-id`, which
receivers use to de-duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
from standardwebhooks import Webhook

from fallback import __version__
from fallback.core.redact import redact_text
from fallback.core.settings import Settings
from fallback.outbound.outbox import Accepted, Courier, Outcome
from fallback.storage import Message, Storage

# Seconds to connect, and to wait for each read of the answer: a hung receiver is given up on this soon.
TIMEOUT = (5.0, 10.0)
# Longer than one post can take (TIMEOUT): then another sender may post the delivery again.
CLAIM_SECONDS = 60.0
USER_AGENT = f"fallback-webhooks/{__version__}"
# Answers that say the receiver as a whole is unavailable, not that it refuses this one event: its later
# events then wait with this one, so that they still arrive in order once it is back.
UNAVAILABLE = {408, 425, 429, 500, 502, 503, 504}


def signed_headers(webhook: Webhook, event_id: str, body: str, now: datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers of one post of `body`, signed by the reference library at `now`."""
    now = now or datetime.now(UTC)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": webhook.sign(event_id, now, body),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


@dataclass(frozen=True)
class Answer:
    """What one post came to: the receiver's status (None when it never answered) and, unless accepted, why."""

    status: int | None
    error: str | None = None
    retry_after: float | None = None


class WebhookSender(Courier):
    """Posts the due webhooks, oldest first per receiver, and says what each receiver answered."""

    kind = "webhook"
    what = "webhook"
    hold_seconds = CLAIM_SECONDS
    log = logging.getLogger("fallback.webhooks")

    def __init__(self, settings: Settings, storage: Storage):
        super().__init__(settings, storage)
        assert settings.webhook_secret  # required with webhook URLs (config.Settings)
        self.urls = settings.webhook_urls
        self.webhook = Webhook(settings.webhook_secret)
        self.timeout = TIMEOUT
        self.session = requests.Session()
        self._synchronised = False

    def prepare(self) -> None:
        """The events dispatched; once, FALLBACK_WEBHOOK_URLS made the receivers (a changed setting lifts 410s)."""
        super().prepare()
        if not self._synchronised:
            self.storage.outbox.synchronise(self.urls)
            self._synchronised = True

    def post(self, message: Message) -> Answer:
        """Post one message, signed now (the receiver checks the timestamp is recent); what the receiver said."""
        url, body = message.destination or "", message.payload or ""
        headers = signed_headers(self.webhook, message.message_id or "", body)
        try:
            with self.session.post(
                url,
                data=body.encode("utf-8"),
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,  # a webhook URL answers itself: a redirect would turn the POST into a GET
                stream=True,
            ) as response:
                if 200 <= response.status_code < 300:
                    return Answer(response.status_code)
                said = response.raw.read(200, decode_content=True).decode("utf-8", "replace")
                error = f"HTTP {response.status_code} {response.reason or ''}".strip()
                error += f": {' '.join(said.split())}" if said.strip() else ""
                return Answer(response.status_code, redact_text(error, url), _seconds(response.headers))
        except requests.exceptions.Timeout:
            return Answer(None, f"no answer within {self.timeout[1]:g} s")
        except Exception as failure:  # any failure is this try's: recorded and retried, never a stuck claim
            # A library's message may quote the URL, token in its query and all.
            return Answer(None, redact_text(f"{type(failure).__name__}: {failure}", url))

    def send(self, message: Message, accepted: Accepted) -> Outcome:
        """Post one message; a 410 ends its receiver's deliveries, a receiver down holds its later ones back."""
        answer = self.post(message)
        if answer.error is None:
            return Outcome(delivered=True, status=answer.status or 200)
        return Outcome(
            status=answer.status,
            error=answer.error,
            gone=answer.status == 410,
            hold_destination=answer.status is None or answer.status in UNAVAILABLE,
            retry_after=answer.retry_after or 0.0,
        )


def _seconds(headers: Mapping[str, str]) -> float | None:
    """A Retry-After in seconds (the date form is ignored: the backoff applies then)."""
    value = headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None
