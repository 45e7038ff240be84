"""The senders of the outbox: one loop for every kind of message, one transport per kind.

Each kind's sender (notify.NotificationSender, followup.FollowupSender, webhooks.WebhookSender) is a `Courier`
that says only how one message is sent (`send`); claiming, holding, counting tries, backing off (policy.POLICIES),
giving up and recording are done here, once, for all of them. They run in background threads of the process
holding the checker lease (serving/server.py), so a slow or dead destination never delays a visitor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from fallback.core.redact import redact_text, redact_url
from fallback.core.settings import Settings
from fallback.outbound.background import LeaseHolder, while_holding
from fallback.outbound.messages import dispatch
from fallback.outbound.policy import POLICIES
from fallback.storage import Message, RateCheck, Storage

Accepted = Callable[[], None]


@dataclass(frozen=True)
class Outcome:
    """What one try came to: delivered, or why not (`error`, and the destination's `status` if it answered);
    `permanent` when retrying cannot help, `gone` when the destination is gone for good (a webhook's 410),
    `hold_destination` when the destination as a whole is down (its later messages wait with this one),
    `retry_after` the seconds the destination asked to be left alone."""

    delivered: bool = False
    status: int | None = None
    error: str = ""
    permanent: bool = False
    gone: bool = False
    hold_destination: bool = False
    retry_after: float = 0.0


class Courier:
    """Sends the due messages of one kind through its transport, and records what each try came to."""

    kind: ClassVar[str]
    what: ClassVar[str]  # how the log names the kind
    # Longer than one try can take (the transport's timeouts): then another sender may try the message again.
    hold_seconds: ClassVar[float]
    batch: ClassVar[int] = 20
    log: ClassVar[logging.Logger]

    def __init__(self, settings: Settings, storage: Storage):
        self.settings = settings
        self.storage = storage

    def send(self, message: Message, accepted: Accepted) -> Outcome:
        """Send one claimed message; `accepted()` may be called the instant the destination took it."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Before each round: the events recorded since are made into messages (by whichever sender comes first)."""
        dispatch(self.storage, self.settings)

    def quoted_urls(self, message: Message) -> tuple[str, ...]:
        """The URLs a message's errors must not quote (their credentials, their query)."""
        return (message.destination,) if message.destination else ()

    def rate(self) -> RateCheck | None:
        """The shared limit each claim counts against, if the kind has one."""
        return None

    def deliver(self, message: Message) -> bool:
        """Send one claimed message and record the outcome; True when its destination accepted it."""
        recorded: list[bool] = []

        def accepted() -> None:
            # Before the transport's goodbye: a kill -9 from here on may repeat this one message, never lose it.
            self.storage.outbox.delivered(message)
            recorded.append(True)

        try:
            outcome = self.send(message, accepted)
        except Exception as failure:  # any failure is this try's: recorded and retried, never a stuck claim
            # A library's message may quote the destination's URL, token and all.
            outcome = Outcome(error=redact_text(f"{type(failure).__name__}: {failure}", *self.quoted_urls(message)))
        if recorded:
            return True
        if outcome.delivered:
            self.storage.outbox.delivered(message, outcome.status)
            return True
        where = f" to {redact_url(message.destination)}" if message.destination else ""
        if outcome.gone:
            self.log.warning(
                "%s %s%s: gone (%s), skipped until the setting changes", self.what, message.topic, where, outcome.error
            )
            self.storage.outbox.gone(message, outcome.error)
            return False
        now = self.storage.clock()
        retry_at = None if outcome.permanent else POLICIES[self.kind].next_try(message, now, outcome.retry_after)
        self.storage.outbox.failed(message, outcome.error, outcome.status, retry_at, outcome.hold_destination)
        self.log.warning(
            "%s %s%s failed (%s); %s",
            self.what,
            message.topic,
            where,
            outcome.error,
            f"retrying in {(retry_at - now).total_seconds():g}s" if retry_at else "given up",
        )
        return False

    def deliver_pending(self, stop: threading.Event | None = None) -> int:
        """Send every due message, waiting out the rate (with `stop`); how many were delivered."""
        self.prepare()
        delivered = 0
        while not (stop and stop.is_set()) and self.storage.outbox.due(self.kind):
            claimed, wait = self.storage.outbox.claim(self.kind, self.hold_seconds, self.batch, self.rate())
            if wait is not None:
                if stop is None or stop.wait(wait):
                    break
                continue
            if not claimed:
                break  # skipped, or held by another sender meanwhile
            for message in claimed:
                delivered += self.deliver(message)
        return delivered

    def run(self, checker: LeaseHolder, stop: threading.Event) -> None:
        """Send while this process holds the checker lease, until `stop` is set."""
        while_holding(checker, stop, lambda: self.deliver_pending(stop), self.what, self.log)


def dispatch_forever(settings: Settings, storage: Storage, checker: LeaseHolder, stop: threading.Event) -> None:
    """With no sender configured, still mark each event dispatched (into no message), so that configuring one
    later does not send a backlog of stale news."""
    while_holding(checker, stop, lambda: dispatch(storage, settings), "events", logging.getLogger("fallback.outbox"))
