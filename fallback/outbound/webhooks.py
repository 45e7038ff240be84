"""The webhook sender: each queued event posted to each FALLBACK_WEBHOOK_URLS, signed per Standard Webhooks.

It runs in a background thread of the process holding the checker lease (fallback/server.py), like the
notifier, so a slow or dead receiver never delays a visitor. The events are queued in the database by the
transaction that caused them (storage.webhooks); a delivery is claimed before it is posted, so no two senders
post it at once. Delivery is at least once: a post the receiver took but whose answer was lost, or a sender
killed mid-post, is posted again with the same `webhook-id`, which receivers use to de-duplicate.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
from standardwebhooks import Webhook

from fallback import __version__
from fallback.core.redact import redact_text, redact_url
from fallback.core.settings import Settings
from fallback.outbound.background import while_holding
from fallback.storage import Storage

log = logging.getLogger("fallback.webhooks")

# Seconds to connect, and to wait for each read of the answer: a hung receiver is given up on this soon.
TIMEOUT = (5.0, 10.0)
# Longer than one post can take (TIMEOUT): then another sender may post the delivery again.
CLAIM_SECONDS = 60.0
FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 3600.0
USER_AGENT = f"fallback-webhooks/{__version__}"
# Answers that say the receiver as a whole is unavailable, not that it refuses this one event: its later
# events then wait with this one, so that they still arrive in order once it is back.
UNAVAILABLE = {408, 425, 429, 500, 502, 503, 504}


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: 5 s, doubling, at most an hour apart."""
    return min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS)


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


class WebhookSender:
    """Posts the due deliveries, oldest first per destination, and records each answer."""

    def __init__(self, settings: Settings, storage: Storage):
        assert settings.webhook_secret  # required with webhook URLs (config.Settings)
        self.urls = settings.webhook_urls
        self.storage = storage
        self.webhook = Webhook(settings.webhook_secret)
        self.timeout = TIMEOUT
        self.session = requests.Session()
        self._synchronised = False

    def post(self, delivery: dict) -> Answer:
        """Post one delivery, signed now (the receiver checks the timestamp is recent); what the receiver said."""
        url = delivery["url"]
        headers = signed_headers(self.webhook, delivery["event_id"], delivery["payload"])
        try:
            with self.session.post(
                url,
                data=delivery["payload"].encode("utf-8"),
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

    def deliver(self, delivery: dict) -> bool:
        """Post one claimed delivery and record the answer; True when the receiver accepted it."""
        answer = self.post(delivery)
        where = redact_url(delivery["url"])
        if answer.error is None:
            self.storage.webhooks.delivered(delivery["id"], answer.status or 200)
            return True
        if answer.status == 410:
            log.warning("webhook receiver %s answered 410 Gone: skipped until FALLBACK_WEBHOOK_URLS changes", where)
            self.storage.webhooks.gone(delivery, answer.error)
            return False
        delay = max(retry_delay(delivery["attempts"]), min(answer.retry_after or 0, MAX_RETRY_SECONDS))
        unavailable = answer.status is None or answer.status in UNAVAILABLE
        retrying = self.storage.webhooks.failed(delivery, answer.error, answer.status, delay, unavailable)
        log.warning(
            "webhook %s %s to %s failed (%s); %s",
            delivery["type"],
            delivery["event_id"],
            where,
            answer.error,
            f"retrying in {delay:g}s" if retrying else "given up after 24 hours",
        )
        return False

    def deliver_pending(self, stop: threading.Event | None = None) -> int:
        """Post every due delivery; how many the receivers accepted."""
        if not self._synchronised:
            self.storage.webhooks.synchronise(self.urls)
            self._synchronised = True
        accepted = 0
        while not (stop and stop.is_set()) and self.storage.webhooks.due():
            claimed = self.storage.webhooks.claim(CLAIM_SECONDS)
            if not claimed:
                break  # skipped, or held by another sender meanwhile
            for delivery in claimed:
                accepted += self.deliver(delivery)
        return accepted

    def run(self, checker, stop: threading.Event) -> None:
        """Post due deliveries while this process holds the checker lease, until `stop` is set."""
        while_holding(checker, stop, lambda: self.deliver_pending(stop), "webhooks", log)


def _seconds(headers) -> float | None:
    """A Retry-After in seconds (the date form is ignored: the backoff applies then)."""
    value = headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None
