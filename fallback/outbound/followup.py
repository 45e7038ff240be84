"""The follow-up sender: after a lasting recovery, one "we're back" message per lead that asked, never on a request.

It runs in a background thread of the process holding the checker lease (fallback/server.py), like the
notifier. The queue is in the database (storage.followups): a message is claimed before it is sent, so
no two senders send it; the rate is counted in the shared rate-limit table, so FALLBACK_MAIL_RATE holds
across instances; a message is recorded sent the instant the server accepted it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from fallback.core.flag import Flag
from fallback.core.paths import shipped_templates
from fallback.core.redact import redact_text
from fallback.core.settings import Settings
from fallback.outbound import smtp
from fallback.outbound.background import while_holding
from fallback.outbound.mail import MailTemplates, followup_message, main_site_link
from fallback.outbound.notify import retry_delay
from fallback.outbound.unsubscribe_token import UnsubscribeToken
from fallback.storage import Storage

log = logging.getLogger("fallback.followup")

# Longer than one SMTP exchange can take (smtp.TIMEOUT_SECONDS per step): then another sender may retry it.
CLAIM_SECONDS = 120.0

Transport = Callable[..., None]  # smtp.send's signature: (smtp_url, message, accepted)


def recovered_at(flag: Flag, now: datetime) -> datetime | None:
    """Since when visitors have been sent to the main site, if they are now; None while the page is served.

    Any change of mode starts the count again: a forced `down` handed back to `auto` is a recovery too.
    """
    mode = flag.mode_at(now)
    if flag.served_state(now) != "up" or (mode == "auto" and flag.state == "unknown"):
        return None
    if mode != "auto":
        return flag.mode_changed_at
    expiry = flag.mode_until if flag.mode != "auto" else None
    moments = [moment for moment in (flag.state_since, flag.mode_changed_at, expiry) if moment is not None]
    return max(moments) if moments else None


class FollowupSender:
    """Queues the messages after a lasting recovery and sends them, within the rate, retrying refusals."""

    def __init__(self, settings: Settings, storage: Storage, secret_key: str, transport: Transport = smtp.send):
        self.settings = settings
        self.storage = storage
        self.tokens = UnsubscribeToken(secret_key)
        self.templates = MailTemplates(str(shipped_templates()), settings.templates)
        self.transport = transport
        self._queued_for: datetime | None = None  # the recovery this process queued for already

    def queue_after_recovery(self, now: datetime | None = None) -> int:
        """Queue the messages once the site has stayed up FALLBACK_FOLLOWUP_DELAY; how many were queued."""
        now = now or self.storage.clock()
        since = recovered_at(self.storage.flag.read(), now)
        if since is None or since == self._queued_for or (now - since).total_seconds() < self.settings.followup_delay:
            return 0
        queued = self.storage.followups.queue(since)
        self._queued_for = since
        if queued:
            log.info("the site is back: %d follow-up message(s) queued", queued)
        return queued

    def send_one(self) -> tuple[bool, float | None]:
        """Claim and send one due message: (whether one was claimed, seconds to wait when the rate is spent)."""
        rate = self.settings.mail_rate
        item, wait = self.storage.followups.claim(rate.count, rate.seconds, CLAIM_SECONDS)
        if item is None:
            return False, wait
        assert self.settings.public_url and self.settings.mail_from  # required with SMTP (config.Settings)
        message = followup_message(
            self.templates,
            to=item["email"],
            language=item["language"] or "en",
            site_name=self.settings.site_name or "",
            link=main_site_link(self.settings.require_main_url(), item["landing_path"]),
            mail_from=self.settings.mail_from,
            unsubscribe_url=self.tokens.url(self.settings.public_url, item["lead_id"], item["email_key"]),
        )
        try:
            self.transport(
                self.settings.smtp_url,
                message,
                accepted=lambda: self.storage.followups.sent(item["id"], item["lead_id"]),
            )
        except smtp.MailRefused as refused:
            delay = None if refused.permanent else retry_delay(item["attempts"])
            answer = redact_text(refused.answer)
            log.warning("follow-up mail refused (%s); %s", answer, f"retrying in {delay:g}s" if delay else "given up")
            self.storage.followups.failed(item["id"], answer, delay)
        return True, None

    def deliver_pending(self, stop: threading.Event | None = None) -> int:
        """Send every due message, waiting out the rate; returns how many were claimed."""
        claimed = 0
        while not (stop and stop.is_set()) and self.storage.followups.due():
            took, wait = self.send_one()
            if wait is not None:
                if stop is None or stop.wait(wait):
                    break
            elif not took:
                break  # held by another sender meanwhile
            claimed += took
        return claimed

    def run(self, checker, stop: threading.Event) -> None:
        """Queue and send while this process holds the checker lease, until `stop` is set."""

        def one_round() -> None:
            self.queue_after_recovery()
            self.deliver_pending(stop)

        while_holding(checker, stop, one_round, "follow-up mail", log)
