"""Notifications: each flip and forced mode announced once through Apprise, outside the probe loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from fallback.core.redact import redact_text
from fallback.outbound.background import while_holding
from fallback.storage import Storage

log = logging.getLogger("fallback.notify")

MAX_ATTEMPTS = 6
# While one process sends an event, others leave it alone this long.
CLAIM_SECONDS = 60.0


class Notifier:
    """Sends one message to every configured Apprise URL."""

    def __init__(self, urls: Sequence[str]):
        import apprise

        self._apprise = apprise.Apprise()
        for url in urls:
            self._apprise.add(url)

    def send(self, title: str, body: str) -> bool:
        """True when every service accepted the message."""
        return bool(self._apprise.notify(title=title, body=body))


def retry_delay(attempts: int) -> float | None:
    """Seconds before the next attempt after `attempts` failures, or None to give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return min(5.0 * 2 ** (attempts - 1), 300.0)


def deliver_pending(storage: Storage, notifier: Notifier, site_name: str = "") -> int:
    """Announce every due event once; returns how many were sent."""
    sent = 0
    for event in storage.events.claim(CLAIM_SECONDS):
        title = f"[{site_name}] {event['title']}" if site_name else event["title"]
        try:
            ok = notifier.send(title, f"{event['body']}\n({event['at']})")
            error = "a notification service refused the message"
        except Exception as failure:  # a broken notifier must never stop the loop
            # A service's error may quote its URL, tokens and all.
            ok, error = False, redact_text(f"{type(failure).__name__}: {failure}")
        if ok:
            storage.events.sent(event["id"])
            sent += 1
        else:
            delay = retry_delay(event["attempts"] + 1)
            log.warning(
                "notification %r failed (%s); %s",
                event["title"],
                error,
                f"retrying in {delay:g}s" if delay else "giving up",
            )
            storage.events.failed(event["id"], error, delay)
    return sent


def deliver_forever(storage: Storage, notifier: Notifier, checker, stop: threading.Event, site_name: str = "") -> None:
    """Send due notifications while this process holds the checker lease, until `stop` is set."""
    while_holding(checker, stop, lambda: deliver_pending(storage, notifier, site_name), "notifications", log)
