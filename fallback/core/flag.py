"""The flag: what the admin chose (mode) and what visitors get (state), as pure values."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime

from fallback.core.cache import Cached
from fallback.core.clock import iso

MODES = ("auto", "up", "down")
STATES = ("unknown", "up", "down")


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
    # The admin's public notice ("Back at 21:30"), shown on the page as plain text; None when there is none.
    notice: str | None = None

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


# The flag, as visitors' answers read it.
CachedFlag = Cached[Flag]

# The page's Retry-After while nobody knows when the site returns.
DEFAULT_RETRY_AFTER = 120


def back_in(flag: Flag, now: datetime) -> int | None:
    """Seconds until a forced `down` expires, the only time we know when the site returns; else None."""
    if flag.mode_at(now) == "down" and flag.mode_until is not None:
        return max(1, math.ceil((flag.mode_until - now).total_seconds()))
    return None
