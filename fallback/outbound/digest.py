"""Lead digests (FALLBACK_NOTIFY_LEADS): "12 new leads in the last 5 minutes", to the notification URLs.

A digest says a count and where the dashboard is, never who: anyone can type anyone's address, and a chat room is
no place for a visitor's words. It is one more notification in the outbox (kind `notification`, topic
`leads.digest`), sent and retried like a flip's announcement; storage.digests queues it once a period.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fallback.core.clock import iso
from fallback.storage import NewMessage, Storage
from fallback.web.guard import ADMIN_PATH

TOPIC = "leads.digest"
# A period is digested this long after it ended: a lead whose transaction began just before the end has committed.
SETTLE_SECONDS = 5
_UNITS = ((3600, "hour"), (60, "minute"), (1, "second"))


@dataclass(frozen=True)
class Period:
    """[start, end): the leads first sent from `start` (inclusive) until `end` (exclusive)."""

    start: datetime
    end: datetime


def last_period(now: datetime, seconds: int) -> Period:
    """The latest whole period that ended SETTLE_SECONDS or more before `now`. Periods are counted from the Unix
    epoch, so every process and instance cuts time at the same instants and names a period alike."""
    settled = int((now - timedelta(seconds=SETTLE_SECONDS)).timestamp())
    end = datetime.fromtimestamp(settled - settled % seconds, UTC)
    return Period(end - timedelta(seconds=seconds), end)


def plural(count: int, noun: str) -> str:
    """`1 lead`, `12 leads`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def span(seconds: int) -> str:
    """A period as the digest says it: `minute`, `5 minutes`, `hour`, `90 minutes`, `45 seconds`."""
    unit, name = next((unit, name) for unit, name in _UNITS if seconds % unit == 0)
    return name if seconds == unit else plural(seconds // unit, name)


def dashboard_url(public_url: str | None) -> str | None:
    """The dashboard's address on FALLBACK_PUBLIC_URL, when it is set."""
    return public_url.rstrip("/") + ADMIN_PATH if public_url else None


def digest_text(count: int, start: datetime, end: datetime, dashboard: str | None) -> dict[str, str]:
    """The digest's title, body and time, as the notification sender reads them: a count, the period, the
    dashboard's address; nothing a visitor wrote."""
    news = f"{plural(count, 'new lead')} in the last {span(int((end - start).total_seconds()))}"
    where = f": {dashboard}" if dashboard else " (see the dashboard)"
    return {"title": plural(count, "new lead"), "body": news + where, "at": iso(end)}


def queue_digest(storage: Storage, period: Period, public_url: str | None) -> int | None:
    """Queue the digest of `period` unless a process did already; how many leads it counted (None: done already)."""
    dashboard = dashboard_url(public_url)

    def build(count: int, start: datetime, end: datetime) -> NewMessage:
        return NewMessage("notification", TOPIC, payload=json.dumps(digest_text(count, start, end, dashboard)))

    return storage.digests.queue(period.start, period.end, build)
