"""The follow-up sender: after a lasting recovery, one "we're back" message per lead that asked, never on a request.

The messages are outbox rows of kind `followup` (storage.followups queues them); they are claimed, retried and
recorded like every other message (outbound.outbox), one at a time: the rate is counted in the shared rate-limit
table at each claim, so FALLBACK_MAIL_RATE holds across instances, and a message is recorded sent the instant the
server accepted it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from fallback.core.flag import Flag
from fallback.core.paths import shipped_templates
from fallback.core.redact import redact_text
from fallback.core.settings import Settings
from fallback.outbound import smtp
from fallback.outbound.mail import MailTemplates, followup_message, main_site_link
from fallback.outbound.outbox import Accepted, Courier, Outcome
from fallback.outbound.unsubscribe_token import UnsubscribeToken
from fallback.storage import Message, RateCheck, Storage
from fallback.storage.followups import MAIL_RATE_KEY

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


class FollowupSender(Courier):
    """The transport of the `followup` kind: queues the messages after a lasting recovery and mails them."""

    kind = "followup"
    what = "follow-up mail"
    hold_seconds = CLAIM_SECONDS
    batch = 1  # one at a time: each claim counts against FALLBACK_MAIL_RATE
    log = logging.getLogger("fallback.followup")

    def __init__(self, settings: Settings, storage: Storage, secret_key: str, transport: Transport = smtp.send):
        super().__init__(settings, storage)
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
            self.log.info("the site is back: %d follow-up message(s) queued", queued)
        return queued

    def prepare(self) -> None:
        """The events dispatched, and the messages of a lasting recovery queued."""
        super().prepare()
        self.queue_after_recovery()

    def rate(self) -> RateCheck:
        """FALLBACK_MAIL_RATE, one counter for every instance on the database."""
        return RateCheck(MAIL_RATE_KEY, self.settings.mail_rate.count, self.settings.mail_rate.seconds)

    def send(self, message: Message, accepted: Accepted) -> Outcome:
        """Mail one lead through FALLBACK_SMTP_URL; recorded as sent the instant the server accepted it."""
        recipient = self.storage.followups.recipient(message.lead_id or 0)
        if recipient is None:  # erased meanwhile (erasure drops its messages too): nobody to write to
            return Outcome(error="the lead was erased", permanent=True)
        assert self.settings.public_url and self.settings.mail_from  # required with SMTP (config.Settings)
        mail = followup_message(
            self.templates,
            to=recipient.email,
            language=recipient.language or "en",
            site_name=self.settings.site_name or "",
            link=main_site_link(self.settings.require_main_url(), recipient.landing_path),
            mail_from=self.settings.mail_from,
            unsubscribe_url=self.tokens.url(self.settings.public_url, recipient.lead_id, recipient.email_key),
        )
        try:
            self.transport(self.settings.smtp_url, mail, accepted=accepted)
        except smtp.MailRefused as refused:
            return Outcome(error=redact_text(refused.answer), permanent=refused.permanent)
        return Outcome(delivered=True)
