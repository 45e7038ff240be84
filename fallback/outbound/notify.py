"""Notifications: each flip and forced mode announced once through Apprise to FALLBACK_NOTIFY_URLS, and, with
FALLBACK_NOTIFY_LEADS, a digest of the new leads once a period (outbound.digest)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from fallback.core.settings import Settings
from fallback.outbound.digest import last_period, queue_digest
from fallback.outbound.outbox import Accepted, Courier, Outcome
from fallback.storage import Message, Storage


class Announcer(Protocol):
    """What sends an announcement: Apprise (Notifier), or a stand-in in tests."""

    def send(self, title: str, body: str) -> bool:
        """True when every service accepted it."""
        ...


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


class NotificationSender(Courier):
    """The transport of the `notification` kind: the announcement's text, prefixed with the site's name."""

    kind = "notification"
    what = "notification"
    hold_seconds = 60.0  # Apprise's services each time out well within it
    log = logging.getLogger("fallback.notify")

    def __init__(self, settings: Settings, storage: Storage, notifier: Announcer | None = None):
        super().__init__(settings, storage)
        self.notifier = notifier or Notifier(settings.notify_urls)
        self._digested: datetime | None = None  # the end of the latest period this process saw queued

    def prepare(self) -> None:
        """The events dispatched, and, with FALLBACK_NOTIFY_LEADS, the digest of a period just ended queued."""
        super().prepare()
        self.queue_digest()

    def queue_digest(self) -> int | None:
        """Queue the latest whole period's digest, unless this process (or another) did; how many leads it counted.
        A write once a period, not each round: the round before knows which period it saw."""
        seconds = self.settings.notify_leads
        if not seconds:
            return None
        period = last_period(self.storage.clock(), seconds)
        if period.end == self._digested:
            return None
        counted = queue_digest(self.storage, period, self.settings.public_url)
        self._digested = period.end
        if counted:
            self.log.info("lead digest queued: %d new lead(s) until %s", counted, period.end.isoformat())
        return counted

    def quoted_urls(self, message: Message) -> tuple[str, ...]:
        """A service's error may quote its URL, tokens and all."""
        return self.settings.notify_urls

    def send(self, message: Message, accepted: Accepted) -> Outcome:
        """Announce one message to every service at once."""
        text = json.loads(message.payload or "{}")
        site = self.settings.site_name
        title = f"[{site}] {text['title']}" if site else text["title"]
        if self.notifier.send(title, f"{text['body']}\n({text['at']})"):
            return Outcome(delivered=True)
        return Outcome(error="a notification service refused the message")
