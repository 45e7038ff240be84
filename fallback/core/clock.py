"""Time: the current instant in UTC, and the fixed-width ISO-8601 text stored times sort by."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """A fixed-width UTC ISO-8601 text, so that stored times sort as strings."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_iso(text: str | None) -> datetime | None:
    """The datetime stored by `iso`, or None."""
    return datetime.fromisoformat(text) if text else None
