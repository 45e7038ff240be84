"""Admission as pure arithmetic: the shared gate's "served up to" mark, a place's wait, and the rate's AIMD step.

The gate is one row shared by every worker and instance (fallback.storage.admission): `next_place`, the next
place not yet reserved; a mark (`mark_place` at `mark_at`) that advances at `rate` visitors per second; the
rate in force; and `send_at`, the send-on schedule (below). A place `p` may go on once `p < served(now)`. The
mark never banks more than `BURST_SECONDS` of the rate beyond the last reserved place, so an idle hour does not
let a spike through at once, and it is re-based (moved to `served(now)`, `mark_at = now`) whenever the rate
changes, so the formula holds piecewise.
Times are seconds since the epoch (floats), as every instance's clock gives them.

The mark says whose turn has come, not who actually goes: a visitor whose place was passed while they were away
comes back later, maybe together with others. So a visitor who waited goes on at a time drawn from the send-on
schedule, a token bucket kept as one number (GCRA, ITU-T I.371's "virtual scheduling"): `send_at` is when the
next visitor would go on were nobody allowed ahead, and at most `SEND_BURST` seconds' worth of the rate go on
before it. Late returners then reach the main site at the rate, never in a bunch.
"""

from __future__ import annotations

import dataclasses
import math

# How much of the rate may go on at once after a quiet spell: a quarter of a second's worth (at least one visitor).
# Kept short: whatever is banked goes on at once on top of the rate, to a main site already busy with the rate.
BURST_SECONDS = 0.25
# The send-on schedule lets this many seconds' worth of the rate go on together when visitors who waited come back
# at once: a burst lands on a main site already busy with the rate, and its requests take longer when it is loaded
# (the bench measured a peak of C + 1 with a quarter of a second). New visitors, whom the mark already holds to
# BURST_SECONDS, keep that burst, so that arrivals under the rate are not made to wait.
SEND_BURST = 0.1
# A waiting visitor whose turn is further off than this looks again a little early (a share of their wait drawn
# in [EARLY_SHARE, 1)), so that visitors told the same wait do not come back together, and then at the exact
# time left; closer than this, at the exact time.
CLOSE_SECONDS = 3.0
EARLY_SHARE = 0.7
# How often the checker steps the rate while admission holds visitors back (fallback.checking.admission).
STEP_SECONDS = 1.0
# A worker reserves places in blocks of at most this many seconds of the rate (and MAX_BLOCK places): one write
# per block rather than per visitor. Unused places of a dropped block are skipped by the mark like any other.
BLOCK_SECONDS = 0.1
MAX_BLOCK = 256
# A reserved block is handed out for at most this long, then dropped: a later block always holds later places,
# so nobody goes on ahead of someone who arrived more than a second earlier.
BLOCK_LIFETIME = 0.75
# AIMD: a probe slower than this share of FALLBACK_MAX_LATENCY (or failing) halves the rate; a fast one adds
# INCREASE_SHARE of the ceiling; after an outage the rate starts at START_SHARE of the ceiling.
SLOW_SHARE = 0.5
INCREASE_SHARE = 0.1
START_SHARE = 0.1
# The rate never falls below this share of the ceiling, nor below one visitor a minute.
FLOOR_SHARE = 0.05
MIN_RATE = 1 / 60
# Float arithmetic on the mark: a slot passed to within this counts as passed.
EPSILON = 1e-9


@dataclasses.dataclass(frozen=True)
class Gate:
    """One reading of the shared gate."""

    next_place: int = 0
    mark_place: float = 0.0
    mark_at: float = 0.0
    rate: float = 0.0  # visitors per second in force; 0 while paused (the main site down, or admission off)
    send_at: float = 0.0  # the send-on schedule: when the next visitor goes on, SEND_BURST before it at the most

    def served(self, now: float) -> float:
        """The places below this may go on at `now`."""
        if self.rate <= 0:
            return self.mark_place
        grown = self.mark_place + self.rate * max(0.0, now - self.mark_at)
        return min(grown, self.next_place + burst(self.rate))

    def admits(self, place: int, now: float) -> bool:
        """Whether `place`'s turn has come at `now`: the mark has passed its whole slot, [place, place + 1)."""
        return place + 1 <= self.served(now) + EPSILON

    def ahead(self, place: int, now: float) -> int:
        """How many places before `place` have not had their turn yet."""
        return max(0, place - math.floor(self.served(now) + EPSILON))

    def wait(self, place: int, now: float, ceiling: float, adapt: bool) -> float:
        """Seconds until `place`'s turn comes (0 when it has come), were the main site to stay healthy: under
        FALLBACK_ADMIT_RATE `ceiling` and FALLBACK_ADMIT_ADAPT `adapt` (see projected_wait)."""
        return projected_wait(place + 1 - self.served(now), self.rate, ceiling or self.rate, adapt)

    def waiting(self, now: float) -> int:
        """How many reserved places are still ahead of the mark: the visitors holding a place, roughly.

        Places reserved by a worker but not handed out yet count too, until their block is dropped.
        """
        return max(0, math.ceil(self.next_place - self.served(now)))

    def rebased(self, now: float, rate: float) -> Gate:
        """The gate with the mark moved to `now` and `rate` in force from then on."""
        return Gate(self.next_place, self.served(now), now, rate, self.send_at)

    def booked(self, now: float) -> Gate:
        """The gate after booking one visitor on the send-on schedule at `now` (what AdmissionStore.book writes)."""
        return dataclasses.replace(self, send_at=max(self.send_at, now) + schedule_step(self.rate))

    def sending_freely(self, now: float) -> bool:
        """Whether the send-on schedule lets a new visitor whose turn came go at once, unbooked (their reservation
        counted them on it): the last visitor it counted may go now, so nobody who waited is due before them."""
        return self.send_at - schedule_step(self.rate) - BURST_SECONDS <= now


def send_time(booked: Gate, now: float) -> float:
    """When a visitor booked on the send-on schedule at `now` goes on, from the gate their booking returned: the
    schedule was moved one step on from `max(send_at, now)`, and up to SEND_BURST before that goes at once."""
    return max(now, booked.send_at - schedule_step(booked.rate) - SEND_BURST)


def schedule_step(rate: float) -> float:
    """How far one visitor moves the send-on schedule: one visitor's share of a second at `rate`."""
    return 1.0 / rate if rate > 0 else 0.0


def projected_wait(places: float, rate: float, ceiling: float, adapt: bool) -> float:
    """Seconds until `places` more have gone on, were the main site to stay healthy: with FALLBACK_ADMIT_ADAPT the
    rate climbs a tenth of the ceiling a second up to it (from the start rate while paused), as the checker steps it.

    A wait estimated at the rate in force alone would be far too long while the rate climbs after an outage."""
    if places <= EPSILON:
        return 0.0
    if not adapt:
        return places / (rate if rate > 0 else ceiling)
    current = min(ceiling, rate) if rate > 0 else start_rate(ceiling)
    waited = 0.0
    while current < ceiling and places > current * STEP_SECONDS:
        places -= current * STEP_SECONDS
        waited += STEP_SECONDS
        current = min(ceiling, current + ceiling * INCREASE_SHARE)
    return waited + places / current


def look_again_after(wait: float, draw: float) -> float:
    """When a waiting visitor's page looks again, `draw` uniform in [0, 1): never after their turn (an honest wait
    is kept to), a little early and spread while it is far, at the exact time once it is close."""
    if wait <= CLOSE_SECONDS:
        return max(0.05, wait)
    return wait * (EARLY_SHARE + (1 - EARLY_SHARE) * draw)


def burst(rate: float) -> float:
    """How many places the mark may bank beyond the last reserved one."""
    return max(1.0, rate * BURST_SECONDS)


def block_size(rate: float, recent: int) -> int:
    """How many places a worker reserves at once: about what it handed out lately, capped by the rate's share."""
    cap = max(1, min(MAX_BLOCK, math.floor(rate * BLOCK_SECONDS)))
    return max(1, min(cap, recent))


def retry_after(wait: float) -> int:
    """The `Retry-After` of a wait: whole seconds, at least one."""
    return max(1, math.ceil(wait))


def floor_rate(ceiling: float) -> float:
    """The lowest rate AIMD may fall to under `ceiling`."""
    return min(ceiling, max(MIN_RATE, ceiling * FLOOR_SHARE))


def start_rate(ceiling: float) -> float:
    """The rate in force when the main site comes back after an outage: low, so the reopening is paced."""
    return max(floor_rate(ceiling), ceiling * START_SHARE)


def next_rate(rate: float, ceiling: float, healthy: bool) -> float:
    """One AIMD step: halve on a slow or failed round, else add a tenth of the ceiling; within floor and ceiling."""
    if healthy:
        return min(ceiling, max(rate, floor_rate(ceiling)) + ceiling * INCREASE_SHARE)
    return max(floor_rate(ceiling), rate / 2)


def rate_in_force(rate: float, ceiling: float, up: bool, adapt: bool, healthy: bool) -> float:
    """The rate after one probe round: paused (0) while visitors get the page; from a pause, low when adapting
    (a paced reopening); then AIMD on the round's health, or the ceiling itself without FALLBACK_ADMIT_ADAPT."""
    if not up:
        return 0.0
    if not adapt:
        return ceiling
    if rate <= 0:
        return start_rate(ceiling)
    return next_rate(min(rate, ceiling), ceiling, healthy)


def healthy_round(passed: bool, slowest: float, max_latency: float) -> bool:
    """Whether a probe round counts as fast: it passed and its slowest answer took under half the latency limit."""
    return passed and slowest < max_latency * SLOW_SHARE
