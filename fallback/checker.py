"""The health checker: probes the main site, decides with hysteresis, flips the flag once.

No Flask here: the decision is a pure function, and the loop takes its storage,
probe runner, clock and sleep as arguments, so both run in tests without a server.
The status documents are built in fallback.status; the threads are started by fallback.server.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from .config import Settings
from .probe import ProbeResult, ProbeRunner
from .selfprobe import WARNING as SELF_PROBE_WARNING
from .storage import Storage, StorageError

if TYPE_CHECKING:  # only a served checker counts; `fallback check` needs neither Flask nor prometheus_client
    from .metrics import Metrics

log = logging.getLogger("fallback.checker")

# After a first failure (or a first success while down), look again this soon.
QUICK_RECHECK_SECONDS = 0.25
PROBE_HISTORY = timedelta(days=1)
# Longer than the longest rate-limit window (an hour): older counters can no longer matter.
RATE_WINDOW_HISTORY = timedelta(hours=2)


@dataclasses.dataclass(frozen=True)
class Tally:
    """What the checker remembers between rounds: the state it believes and the current streak."""

    state: str = "unknown"
    failures: int = 0
    successes: int = 0


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome of one round."""

    tally: Tally
    flip_to: str | None
    reason: str
    network_doubt: bool
    next_check_in: float


def round_verdict(main: Sequence[ProbeResult]) -> tuple[bool, str]:
    """A round passes only if every check URL passed: one broken URL is a broken site."""
    failed = [result for result in main if not result.ok]
    if not failed:
        slowest = max((result.latency for result in main), default=0.0)
        urls = f"{len(main)} check URL{'s' if len(main) != 1 else ''}"
        return True, f"all {urls} answered (slowest {slowest * 1000:.0f} ms)"
    return False, "; ".join(f"{result.url}: {result.reason}" for result in failed)


def decide(
    tally: Tally, main: Sequence[ProbeResult], control: ProbeResult | None, fall: int, rise: int, interval: float
) -> Decision:
    """Fold one round of probe results into the tally: down after `fall` failures, up after `rise` successes."""
    ok, reason = round_verdict(main)
    if not ok and control is not None and not control.ok:
        # The main site and a site that should always answer both fail: our own network is the suspect.
        return Decision(
            tally, None, f"network in doubt: {reason}; control {control.url}: {control.reason}", True, interval
        )
    if ok:
        streak = Tally(tally.state, 0, tally.successes + 1)
        flip = "up" if tally.state != "up" and streak.successes >= rise else None
    else:
        streak = Tally(tally.state, tally.failures + 1, 0)
        flip = "down" if tally.state != "down" and streak.failures >= fall else None
    if flip:
        return Decision(Tally(flip, streak.failures, streak.successes), flip, reason, False, interval)
    heading_elsewhere = (not ok and tally.state != "down") or (ok and tally.state != "up")
    return Decision(streak, None, reason, False, QUICK_RECHECK_SECONDS if heading_elsewhere else interval)


def probe_round(runner: ProbeRunner, settings: Settings) -> tuple[list[ProbeResult], ProbeResult | None]:
    """One round's probes, all at once: every check URL (with the expected text), and the control URL (without)."""
    urls, control_url = list(settings.check_urls), settings.control_url
    results = runner.run(
        urls + ([control_url] if control_url else []),
        expect_text_for=lambda url: None if url == control_url else settings.expect_text,
    )
    return results[: len(urls)], (results[len(urls)] if control_url else None)


class Checker:
    """One checker loop; many may run against one database, only the lease holder probes."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        runner: ProbeRunner | None = None,
        owner: str | None = None,
        sleep: Callable[[float], object] = time.sleep,
        self_key: bytes | None = None,
        metrics: Metrics | None = None,
    ):
        self.settings = settings
        self.metrics = metrics
        self.storage = storage
        self.runner = runner or ProbeRunner(
            settings.check_timeout, settings.max_latency, settings.expect_text, self_key=self_key
        )
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.sleep = sleep
        self.tally = Tally(storage.flag.read().state)
        self.holding = False
        self.rounds = 0
        # The self-probe warning is logged once until the site is seen up again, not every round.
        self.self_probe_warned = False

    @property
    def lease_seconds(self) -> float:
        """How long the lease outlives a silent holder before another process takes over."""
        return 3 * self.settings.check_interval + self.settings.check_timeout

    def step(self) -> float:
        """Run one round if this checker holds the lease; returns how long to wait before the next."""
        if not self.storage.checker.claim(self.owner, self.lease_seconds):
            if self.holding:
                log.info("checker lease lost to another process")
            self.holding = False
            return self.settings.check_interval
        if not self.holding:
            log.info("this process is now the checker (%s)", self.owner)
            # Another holder may have flipped since we last looked: start from the stored state.
            self.tally = Tally(self.storage.flag.read().state)
            self.holding = True
        claimed_at = self.storage.clock()
        self.storage.flag.expire_mode()
        main, control = probe_round(self.runner, self.settings)
        if self.metrics is not None:  # probes made are counted, even those of a round dropped below
            self.metrics.probed(main)
        if self.storage.clock() - claimed_at > timedelta(seconds=self.lease_seconds):
            # Stalled past the lease: another process may hold it by now, with fresher probes.
            log.warning("a checker round outlasted the lease (%g s): its results are dropped", self.lease_seconds)
            return self.settings.check_interval
        decision = decide(
            self.tally, main, control, self.settings.fall, self.settings.rise, self.settings.check_interval
        )
        self.tally = decision.tally
        if decision.flip_to:
            expected = self.storage.flag.read().state
            if expected != decision.flip_to and self.storage.flag.flip(expected, decision.flip_to, decision.reason):
                if self.metrics is not None:
                    self.metrics.flipped()
                # An outage is what the team must hear about; a recovery is good news, for the record.
                level = logging.WARNING if decision.flip_to == "down" else logging.INFO
                log.log(level, "main site %s: %s", decision.flip_to, decision.reason)
        reached_itself = self.warn_of_self_probes(main, decision.flip_to)
        note = decision.reason if decision.network_doubt else (SELF_PROBE_WARNING if reached_itself else None)
        self.storage.checker.record_round(
            self.owner,
            [_probe_row(result, control=False) for result in main] + ([_probe_row(control, True)] if control else []),
            decision.network_doubt,
            note,
        )
        self.rounds += 1
        if self.rounds % 100 == 1:
            now = self.storage.clock()
            self.storage.checker.prune_probes(now - PROBE_HISTORY)
            self.storage.limits.prune(now - RATE_WINDOW_HISTORY)
        return decision.next_check_in

    def warn_of_self_probes(self, main: Sequence[ProbeResult], flip_to: str | None) -> bool:
        """Log once per incident that a probe reached fallback itself; whether one did this round."""
        reached = [result.url for result in main if result.self_probe]
        if reached and not self.self_probe_warned:
            log.warning("%s: %s", ", ".join(reached), SELF_PROBE_WARNING)
            self.self_probe_warned = True
        if flip_to == "up":
            self.self_probe_warned = False
        return bool(reached)

    def run(self, stop: threading.Event) -> None:
        """Loop until `stop` is set; an error in one round is logged and the loop goes on."""
        try:
            while not stop.is_set():
                try:
                    delay = self.step()
                except StorageError as error:  # an outage of the database: one line a round, no traceback
                    log.warning("checker round failed; retrying: %s", error)
                    delay = self.settings.check_interval
                except Exception:  # the checker must outlive any one bad round
                    log.exception("checker round failed; retrying")
                    delay = self.settings.check_interval
                stop.wait(delay)
        finally:
            if self.holding:
                try:
                    self.storage.checker.release(self.owner)
                except StorageError:
                    pass


def _probe_row(result: ProbeResult, control: bool) -> dict:
    return {
        "url": result.url,
        "ok": int(result.ok),
        "latency_ms": round(result.latency * 1000),
        "status": result.status,
        "reason": result.reason,
        "control": int(control),
    }
