"""The flag: what the admin chose (mode) and what visitors get (state), as pure values."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

MODES = ("auto", "up", "down")
STATES = ("unknown", "up", "down")
T = TypeVar("T")


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """A fixed-width UTC ISO-8601 text, so that stored times sort as strings."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_iso(text: str | None) -> datetime | None:
    """The datetime stored by `iso`, or None."""
    return datetime.fromisoformat(text) if text else None


@dataclasses.dataclass(frozen=True)
class Flag:
    """One reading of the persisted flag."""

    mode: str = "auto"
    mode_until: datetime | None = None
    mode_reason: str | None = None
    mode_by: str | None = None
    mode_changed_at: datetime | None = None
    state: str = "unknown"
    state_since: datetime | None = None
    state_reason: str | None = None
    version: int = 0

    def mode_at(self, now: datetime) -> str:
        """The mode in force at `now`: a forced mode falls back to auto once expired."""
        if self.mode != "auto" and self.mode_until is not None and now >= self.mode_until:
            return "auto"
        return self.mode

    def served_state(self, now: datetime) -> str:
        """What visitors get at `now`: `up` (redirect) or `down` (the contact page)."""
        mode = self.mode_at(now)
        if mode != "auto":
            return mode
        return "down" if self.state == "down" else "up"

    def since(self, now: datetime) -> datetime | None:
        """When the state visitors get at `now` began."""
        if self.mode_at(now) != "auto":
            return self.mode_changed_at
        if self.mode != "auto" and self.mode_until is not None:
            # An expired override hands back to the checker at its expiry.
            return max(filter(None, (self.mode_until, self.state_since)))
        return self.state_since

    def as_status(self, now: datetime) -> dict:
        """The public status document of `/_fallback/status.json` and `fallback status --json`."""
        mode = self.mode_at(now)
        since = self.since(now)
        until = self.mode_until if mode != "auto" else None
        return {
            "state": self.state if mode == "auto" else mode,
            "served": self.served_state(now),
            "mode": mode,
            "since": iso(since) if since else None,
            "mode_until": iso(until) if until else None,
            "reason": (self.mode_reason if mode != "auto" else self.state_reason) or None,
        }


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)([smhd]?)")
DURATION_FORMS = "5, 5s, 2m, 1h or 1h30m"


def parse_seconds(text: str) -> float:
    """The seconds in a duration: `5` or `2.5` (seconds), `5s`, `2m`, `1h`, `1d`, or `1h30m`; ValueError otherwise.

    Every duration, settings and command options alike, is read here, so they all take the same forms.
    """
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    # A bare number is seconds, but only alone: "1h30" would be ambiguous.
    unitless = [unit for _, unit in parts if not unit]
    if not compact or "".join(a + b for a, b in parts) != compact or (unitless and len(parts) > 1):
        raise ValueError(f"{text!r} is not a duration: use {DURATION_FORMS}")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def parse_duration(text: str) -> timedelta:
    """How long a forced mode lasts: a duration (`parse_seconds`) from 1 second to 366 days; ValueError otherwise."""
    seconds = parse_seconds(text)
    if not 1 <= seconds <= 366 * 86400:
        raise ValueError(f"{text!r} is not a duration between 1 second and 366 days")
    return timedelta(seconds=seconds)


class Cached(Generic[T]):
    """A value as this process last read it, re-read at most every `ttl` seconds.

    Every worker sees a change within `ttl`, at the cost of one read per worker per `ttl`
    instead of one per request.
    """

    def __init__(self, load: Callable[[], T], ttl: float = 0.5, monotonic: Callable[[], float] = time.monotonic):
        self._load = load
        self._ttl = ttl
        self._monotonic = monotonic
        self._value: T | None = None
        self._read_at = float("-inf")

    def get(self) -> T:
        """The value, from memory while fresh."""
        now = self._monotonic()
        if self._value is None or now - self._read_at >= self._ttl:
            self._value = self._load()
            self._read_at = now
        return self._value

    def invalidate(self) -> None:
        """Forget the cached reading, after this process changed the value itself."""
        self._value = None


# The flag, as visitors' answers read it.
CachedFlag = Cached[Flag]
