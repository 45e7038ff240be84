"""What a probe agent's verdict may say (`POST /_fallback/api/v1/verdicts`, FALLBACK_QUORUM): the API's rules.

Pure functions, no Flask and no requests: the API checks a report with them, and `fallback probe` clips its
reason by the same limit, so that a long list of failing URLs never makes a report the API refuses.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

from fallback.core.flag import STATES
from fallback.core.redact import redact_text

MAX_NAME = 100
# Longer reasons are cut, not refused: a round with many failing URLs is no reason to lose the vote.
MAX_REASON = 500
# A verdict is a few hundred bytes; anything much larger is not one, and is refused before it is read.
MAX_BODY = 4096
# An agent's clock may run a little ahead of ours; more than this is a clock to fix (NTP), not a verdict.
FUTURE_SKEW = timedelta(seconds=30)
FIELDS = ("name", "state", "ok", "reason", "at")
OPTIONAL = frozenset({"reason"})


class BadVerdict(ValueError):
    """A report the API refuses: `slug` names the problem, the message says what to send instead."""

    def __init__(self, slug: str, detail: str):
        super().__init__(detail)
        self.slug = slug


@dataclasses.dataclass(frozen=True)
class Report:
    """One vantage point's verdict as the API stores it."""

    name: str
    state: str
    ok: bool
    reason: str | None
    at: datetime


def is_control(character: str) -> bool:
    """Control and format characters (newlines, bidi overrides, zero-width marks): unfit for a name or a log line."""
    return unicodedata.category(character) in ("Cc", "Cf")


def name_problem(name: object) -> str | None:
    """Why `name` cannot name a vantage point, or None when it can."""
    if not isinstance(name, str) or not name.strip():
        return "name must be a non-empty text"
    if len(name) > MAX_NAME:
        return f"name must be at most {MAX_NAME} characters"
    if any(is_control(character) for character in name):
        return "name must not hold control characters"
    return None


def clip_reason(reason: str) -> str:
    """`reason` on one line, at most MAX_REASON characters."""
    flat = "".join(" " if is_control(character) else character for character in reason)
    return flat if len(flat) <= MAX_REASON else flat[: MAX_REASON - 1] + "…"


def read_report(body: dict[str, Any], now: datetime) -> Report:
    """The report in a request's JSON object, checked; BadVerdict saying what is wrong otherwise."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise BadVerdict("unknown-fields", f"unknown fields: {', '.join(unknown)}")
    missing = [field for field in FIELDS if field not in body and field not in OPTIONAL]
    if missing:
        raise BadVerdict("missing-fields", f"missing fields: {', '.join(missing)}")
    problem = name_problem(body["name"])
    if problem:
        raise BadVerdict("bad-name", problem)
    if body["state"] not in STATES:
        raise BadVerdict("bad-state", f"state must be one of {', '.join(STATES)}, got {body['state']!r}")
    if not isinstance(body["ok"], bool):
        raise BadVerdict("bad-ok", "ok must be true or false")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise BadVerdict("bad-reason", "reason must be a text")
    at = read_time(body["at"], now)
    # An agent redacts its probes' URLs already; a reason from elsewhere must not store a secret either.
    return Report(body["name"], body["state"], body["ok"], clip_reason(redact_text(reason)) if reason else None, at)


def read_time(value: object, now: datetime) -> datetime:
    """`at`: an ISO-8601 time with its offset, not further than FUTURE_SKEW ahead of `now`."""
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else None
        # In UTC, as it is stored: "0001-01-01T00:30:00+01:00" has no such time, and is refused here.
        at = at.astimezone(UTC) if at is not None and at.tzinfo is not None else None
    except (ValueError, OverflowError):
        at = None
    if at is None:
        raise BadVerdict("bad-time", 'at must be an ISO-8601 time with its offset, such as "2026-11-30T20:00:00Z"')
    ahead = (at - now).total_seconds()
    if ahead > FUTURE_SKEW.total_seconds():
        raise BadVerdict(
            "time-in-future",
            f"at is {ahead:.0f} s ahead of this instance's clock (at most {FUTURE_SKEW.total_seconds():g} s):"
            " set the agent's clock (NTP)",
        )
    return at
