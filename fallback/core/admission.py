"""Admission as pure arithmetic: the shared gate's "served up to" mark, a place's wait, and the rate's AIMD step.

The gate is one row shared by every worker and instance (fallback.storage.admission): `next_place`, the next
place not yet reserved; a mark (`mark_place` at `mark_at`) that advances at `rate` visitors per second; and the
rate in force. A place `p` may go on once `p < served(now)`. The mark never banks more than `BURST_SECONDS` of
the rate beyond the last reserved place, so an idle hour does not let a spike through at once, and it is
re-based (moved to `served(now)`, `mark_at = now`) whenever the rate changes, so the formula holds piecewise.
Times are seconds since the epoch (floats), as every instance's clock gives them.
"""

from __future__ import annotations

import dataclasses
import math

# How much of the rate may go on at once after a quiet spell: half a second's worth (at least one visitor).
# Kept short: whatever is banked goes on at once on top of the rate, and the rate must hold within 10% over 10 s.
BURST_SECONDS = 0.5
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
# While the gate is paused (the main site is down) or unset, the estimate a waiting visitor is given.
UNKNOWN_WAIT = 60


@dataclasses.dataclass(frozen=True)
class Gate:
    """One reading of the shared gate."""

    next_place: int = 0
    mark_place: float = 0.0
    mark_at: float = 0.0
    rate: float = 0.0  # visitors per second in force; 0 while paused (the main site down, or admission off)

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

    def wait(self, place: int, now: float) -> float:
        """Seconds until `place`'s turn comes at the rate in force (0 when it has come)."""
        ahead = place + 1 - self.served(now)
        if ahead <= EPSILON:
            return 0.0
        if self.rate <= 0:
            return float(UNKNOWN_WAIT)
        return ahead / self.rate

    def waiting(self, now: float) -> int:
        """How many reserved places are still ahead of the mark: the visitors holding a place, roughly.

        Places reserved by a worker but not handed out yet count too, until their block is dropped.
        """
        return max(0, math.ceil(self.next_place - self.served(now)))

    def rebased(self, now: float, rate: float) -> Gate:
        """The gate with the mark moved to `now` and `rate` in force from then on."""
        return Gate(self.next_place, self.served(now), now, rate)


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
