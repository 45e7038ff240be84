"""When an outgoing message that failed is tried again, and when it is given up: one rule, one row per kind.

Every kind backs off the same way (5 s after the first failure, doubling); they differ only in how long the
longest wait is and when they give up. A notification or a follow-up mail is news that goes stale: six tries
within a few minutes. A webhook is a record another system keeps: retried for 24 hours, an hour apart at most
(SPEC: at least an hour of retries).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fallback.core.clock import parse_iso
from fallback.storage import Message

FIRST_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Backoff:
    """Waits of FIRST_RETRY_SECONDS doubling up to `longest`; given up after `tries` tries, or once the next
    try would fall past the message's `retry_until` (set `within` after it was made, when the kind has a span)."""

    longest: float
    tries: int | None = None
    within: timedelta | None = None

    def delay(self, attempts: int) -> float:
        """Seconds before the next try after `attempts` failed ones."""
        return min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), self.longest)

    def deadline(self, made: datetime) -> datetime | None:
        """Until when a message made at `made` is retried, if the kind retries for a span of time."""
        return made + self.within if self.within is not None else None

    def next_try(self, message: Message, now: datetime, at_least: float = 0.0) -> datetime | None:
        """When to try `message` again after its latest try failed (at least `at_least` seconds on, as far as
        `longest` allows: a receiver's Retry-After); None to give it up."""
        if self.tries is not None and message.attempts >= self.tries:
            return None
        when = now + timedelta(seconds=max(self.delay(message.attempts), min(at_least, self.longest)))
        until = parse_iso(message.retry_until)
        return None if until is not None and when > until else when


# The one table of retry rules: a new kind adds its row here.
POLICIES = {
    "notification": Backoff(longest=300.0, tries=6),
    "followup": Backoff(longest=300.0, tries=6),
    "webhook": Backoff(longest=3600.0, within=timedelta(hours=24)),
}
