"""The checker's side of admission: the rate in force follows each probe round, and the queue is watched.

The lease holder calls `steer` once per round. It pauses the gate while visitors get the page (so the places
of those who waited keep their order through an outage), starts it low after an outage when adapting, applies
the AIMD step of fallback.core.admission, records a sample for the dashboard, and marks when admission starts
or stops holding visitors back (the `admission.started` and `admission.stopped` webhooks).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from fallback.checking.probe import ProbeResult
from fallback.core.admission import STEP_SECONDS, healthy_round, rate_in_force
from fallback.core.settings import Settings
from fallback.storage import Storage

log = logging.getLogger("fallback.checker")

# While admission holds anyone back, the checker probes this often, so the rate follows the main site closely.
HOLDING_INTERVAL = STEP_SECONDS
SAMPLE_HISTORY = timedelta(hours=1)


def steer(storage: Storage, settings: Settings, main: Sequence[ProbeResult], passed: bool) -> bool:
    """Put this round's rate in force and record it; whether admission now holds visitors back."""
    ceiling = settings.admit_rate
    if ceiling is None:
        return False
    at = storage.clock()
    now = at.timestamp()
    up = storage.flag.read().served_state(at) == "up"
    slowest = max((result.latency for result in main), default=0.0)
    healthy = healthy_round(passed, slowest, settings.max_latency)
    gate = storage.admission.read()
    rate = rate_in_force(gate.rate, ceiling, up, settings.admit_adapt, healthy)
    if rate != gate.rate:
        gate = storage.admission.set_rate(rate, now)
    waiting = gate.waiting(now)
    holding = up and waiting > 0
    if storage.admission.mark_holding(holding, waiting, rate, at):
        if holding:
            log.warning("admission holds visitors back: %d waiting, %.3g a second sent on", waiting, rate)
        else:
            log.info("admission no longer holds anyone back")
    storage.admission.record(at, rate, waiting)
    return holding


def prune(storage: Storage) -> None:
    """Drop the rate's samples older than the dashboard shows."""
    storage.admission.prune(storage.clock() - SAMPLE_HISTORY)
