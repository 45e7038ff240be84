"""The status documents: the public one (state, mode, since, retry_after) and the admin's full one; health.

No probe and no `requests` here: the views import this module, and only the process that runs the
checker needs those.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime

from fallback.checking.quorum import fresh_seconds, quorum_status
from fallback.checking.selfprobe import WARNING as SELF_PROBE_WARNING
from fallback.core.clock import utcnow
from fallback.core.flag import DEFAULT_RETRY_AFTER, Flag, back_in
from fallback.core.redact import redact_text
from fallback.core.settings import Settings
from fallback.storage import Storage, StorageError
from fallback.storage.records import CheckerState

log = logging.getLogger("fallback.status")

# How long one worker serves the same public document while its flag is unchanged (`retry_after` counts down).
PUBLIC_TTL_SECONDS = 1.0
# A failing healthz is logged at most this often per reason, however often a monitor asks.
HEALTH_LOG_SECONDS = 60.0
# What the public document says when the database could not be read even once.
UNREADABLE = {"state": "unknown", "mode": "auto", "since": None, "retry_after": None}


def heartbeat_is_fresh(heartbeat_age: float | None, interval: float, timeout: float) -> bool:
    """The checker is alive while its last round ended less than three intervals plus a timeout ago."""
    return heartbeat_age is not None and heartbeat_age < fresh_seconds(interval, timeout)


def checker_problem(checker: CheckerState, settings: Settings, now: datetime) -> str | None:
    """Why the checker looks dead, or None while its heartbeat is fresh."""
    beat = checker.heartbeat_at
    age = (now - beat).total_seconds() if beat else None
    if heartbeat_is_fresh(age, settings.check_interval, settings.check_timeout):
        return None
    if age is None:
        return "the checker has not completed a round yet"
    return f"the checker's last round ended {age:.0f}s ago"


def public_status(flag: Flag, now: datetime) -> dict:
    """What anyone may know: the state, the mode, since when, and the page's Retry-After while it is shown."""
    document = flag.as_status(now)
    retry_after = (back_in(flag, now) or DEFAULT_RETRY_AFTER) if document["served"] == "down" else None
    return {
        "state": document["state"],
        "mode": document["mode"],
        "since": document["since"],
        "retry_after": retry_after,
    }


def status_document(storage: Storage, settings: Settings, now: datetime) -> dict:
    """The admin's document: state, mode, since, the checker's health and doubts, the open incident, counts, mail."""
    flag = storage.flag.read()
    document = flag.as_status(now)
    checker = storage.checker.read()
    beat = checker.heartbeat_at
    incidents = storage.flag.incidents(1)
    document.update(
        {
            # What the checker (or the quorum) last found of the main site, whatever a forced mode shows visitors.
            "checked_state": flag.state,
            "network_doubt": checker.network_doubt,
            # The last round's probe reached fallback itself: the checker's note then says what to fix.
            "self_probe": checker.note == SELF_PROBE_WARNING,
            "checker": {
                "owner": checker.owner,
                "heartbeat_age": round((now - beat).total_seconds(), 1) if beat else None,
                "healthy": checker_problem(checker, settings, now) is None,
                "note": checker.note,
            },
            "incident": dataclasses.asdict(incidents[0]) if incidents and incidents[0].ended_at is None else None,
            "notice": flag.notice,
            **dataclasses.asdict(storage.leads.count()),
        }
    )
    if settings.quorum > 1:  # with a quorum of 1 the document stays as it always was
        window = fresh_seconds(settings.check_interval, settings.check_timeout)
        document["quorum"] = quorum_status(storage.verdicts.latest(), settings.quorum, now, window, flag.state)
    if settings.smtp_url:  # without SMTP there is no follow-up mail, so nothing to report
        document["followup"] = dataclasses.asdict(storage.followups.counts())
    if settings.admit_rate is not None:  # FALLBACK_ADMIT_RATE off: nobody waits, nothing to report
        document["admission"] = admission_status(storage, settings, now)
    return document


def admission_status(storage: Storage, settings: Settings, now: datetime) -> dict:
    """The rate in force (visitors a second; 0 while paused, the main site down), its ceiling, and the queue."""
    gate = storage.admission.read()
    return {
        "rate": round(gate.rate, 3),
        "ceiling": settings.admit_rate,
        "adapt": settings.admit_adapt,
        "waiting": gate.waiting(now.timestamp()),
        "holding": storage.admission.holding(),
    }


class PublicStatus:
    """The public document as JSON bytes, from the worker's cached flag, rebuilt when it changes or after `ttl`.

    It reads the same `CachedFlag` the visitor answers come from, so a worker's status.json never
    contradicts what its visitors get, and a polling storm costs no database read of its own.
    """

    def __init__(
        self, load: Callable[[], Flag], ttl: float = PUBLIC_TTL_SECONDS, monotonic: Callable[[], float] = time.monotonic
    ):
        self._load = load
        self._ttl = ttl
        self._monotonic = monotonic
        # (flag, built at, body) in one tuple, so that request threads never see one without the others.
        self._cached: tuple[Flag, float, bytes] | None = None

    def body(self) -> bytes:
        """The document, from memory while fresh; the last one built if the database fails (StorageError if none)."""
        now = self._monotonic()
        cached = self._cached
        try:
            flag = self._load()
        except StorageError:
            if cached is None:
                raise
            return cached[2]
        if cached is not None and cached[0] is flag and now - cached[1] < self._ttl:
            return cached[2]
        body = json.dumps(public_status(flag, utcnow())).encode()
        self._cached = (flag, now, body)
        return body

    def invalidate(self) -> None:
        """Forget the cached document, after this process changed the flag itself."""
        self._cached = None


class ThrottledLog:
    """Logs a warning per key at most once every `seconds`: a monitoring storm must not flood the log."""

    def __init__(self, seconds: float = HEALTH_LOG_SECONDS, monotonic: Callable[[], float] = time.monotonic):
        self._seconds = seconds
        self._monotonic = monotonic
        self._last: dict[str, float] = {}

    def warning(self, key: str, message: str, *args: object) -> bool:
        """Log `message` unless `key` was logged less than `seconds` ago; True when it was logged."""
        now = self._monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._seconds:
            return False
        self._last[key] = now
        log.warning(message, *args)
        return True


def health_problem(storage: Storage, settings: Settings, now: datetime) -> tuple[str, str] | None:
    """None while the database is writable and the checker beats; else (`database` or `checker`, the details)."""
    try:
        storage.check_writable()
        checker = storage.checker.read()
    except StorageError as error:
        return "database", redact_text(str(error))
    problem = checker_problem(checker, settings, now)
    return ("checker", problem) if problem else None
