"""Durations: every duration, settings and command options alike, takes the same forms (5, 5s, 2m, 1h)."""

from __future__ import annotations

import re
from datetime import timedelta

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
