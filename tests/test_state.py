"""The flag as a pure value: forced modes, expiry, what visitors get."""

from datetime import UTC, datetime, timedelta

import pytest

from fallback.core.durations import parse_duration, parse_seconds
from fallback.core.flag import CachedFlag, Flag

NOON = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_a_new_database_is_unknown_and_served_like_up():
    flag = Flag()
    assert flag.served_state(NOON) == "up"
    assert flag.as_status(NOON)["state"] == "unknown"


def test_auto_mode_serves_what_the_checker_found():
    assert Flag(state="down").served_state(NOON) == "down"
    assert Flag(state="up").served_state(NOON) == "up"


def test_a_forced_mode_wins_over_the_checker():
    flag = Flag(mode="down", state="up", mode_changed_at=NOON)
    assert flag.served_state(NOON) == "down"
    assert flag.as_status(NOON) | {} == {
        "state": "down",
        "served": "down",
        "mode": "down",
        "since": "2026-11-28T12:00:00.000000+00:00",
        "mode_until": None,
        "reason": None,
    }


def test_a_forced_mode_returns_to_auto_when_it_expires():
    flag = Flag(mode="down", mode_until=NOON + timedelta(hours=2), state="up", state_since=NOON - timedelta(days=1))
    assert flag.served_state(NOON + timedelta(hours=1, minutes=59)) == "down"
    later = NOON + timedelta(hours=2)
    assert flag.mode_at(later) == "auto"
    assert flag.served_state(later) == "up"
    assert flag.since(later) == NOON + timedelta(hours=2)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5", 5),
        ("2.5", 2.5),
        ("5s", 5),
        (" 5 s ", 5),
        ("90s", 90),
        ("2m", 120),
        ("1.5m", 90),
        ("30m", 1800),
        ("1h", 3600),
        ("2H", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("0", 0),
        (".5", 0.5),
    ],
)
def test_one_parser_reads_every_form_of_duration(text, seconds):
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "2x", "-1h", "-5", "1h30", "2h junk", "1e3", "nan", "inf", "1..5"])
def test_the_duration_parser_refuses_what_is_not_a_duration(text):
    with pytest.raises(ValueError, match="5, 5s, 2m, 1h"):
        parse_seconds(text)


@pytest.mark.parametrize(("text", "seconds"), [("2", 2), ("90s", 90), ("2h", 7200), ("1h30m", 5400)])
def test_a_forced_mode_lasts_a_duration_of_any_form(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0m", "0.5", "400d", "soon"])
def test_a_forced_mode_lasts_between_one_second_and_366_days(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_the_cached_flag_rereads_only_after_its_ttl():
    reads = []
    clock = [100.0]
    cached = CachedFlag(lambda: reads.append(1) or Flag(version=len(reads)), ttl=0.5, monotonic=lambda: clock[0])
    assert cached.get().version == 1
    clock[0] += 0.4
    assert cached.get().version == 1
    clock[0] += 0.1
    assert cached.get().version == 2
    cached.invalidate()
    assert cached.get().version == 3
