"""The health checker's loop: holds the lease, probes the main site each round, flips the flag once.

No Flask here: what a round means is decided by a pure function (fallback.checking.decision), and the loop
takes its storage, probe runner, clock and sleep as arguments, so both run in tests without a server.
The status documents are built in fallback.checking.status; the threads are started by fallback.serving.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from fallback.checking import admission
from fallback.checking.decision import Tally, decide
from fallback.checking.probe import ProbeResult
from fallback.checking.quorum import count_votes, default_vantage, fresh_seconds
from fallback.checking.rounds import ProbeRunner, probe_round
from fallback.checking.selfprobe import WARNING as SELF_PROBE_WARNING
from fallback.core.settings import Settings
from fallback.storage import Storage, StorageError

if TYPE_CHECKING:  # only a served checker counts; `fallback check` needs neither Flask nor prometheus_client
    from fallback.core.counters import Metrics

log = logging.getLogger("fallback.checker")

# A checker without the lease looks this often whether it is free: one given up by a process that stopped
# cleanly is taken over well within the 2 s a hand-over may take (docs/operations.md, Hand-over).
HANDOVER_POLL_SECONDS = 0.5
PROBE_HISTORY = timedelta(days=1)
# A vantage point silent this long is gone (an agent retired, an instance whose host name changed on a redeploy,
# as a PaaS's dynos do): it leaves the dashboard's list and no longer counts as one that ever reported.
VANTAGE_HISTORY = timedelta(days=1)
# Longer than the longest rate-limit window (an hour): older counters can no longer matter.
RATE_WINDOW_HISTORY = timedelta(hours=2)


class Checker:
    """One checker loop; many may run against one database, only the lease holder probes.

    With FALLBACK_QUORUM above 1, each instance is a vantage point: its one prober (`prober()` says which
    thread it is) probes every round and records its own verdict, and the lease holder among the probers
    decides from every fresh verdict (fallback.quorum).
    """

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        runner: ProbeRunner | None = None,
        owner: str | None = None,
        sleep: Callable[[float], object] = time.sleep,
        self_key: bytes | None = None,
        metrics: Metrics | None = None,
        vantage: str | None = None,
        prober: Callable[[], bool] | None = None,
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
        # Set once the lease is given up for good (the process is stopping); guarded, with every write made
        # as the holder, by `lease_lock`, so a round still probing when it is given up writes nothing after.
        self.released = False
        self.lease_lock = threading.Lock()
        self.rounds = 0
        # The self-probe warning is logged once until the site is seen up again, not every round.
        self.self_probe_warned = False
        # Under a quorum: this vantage point's name, its own hysteresis (from "unknown": it has seen nothing
        # yet), whether this thread is its instance's one prober, and since when it runs (for the warning).
        self.vantage = vantage or default_vantage(settings.port)
        self.own = Tally()
        self.prober = prober or (lambda: True)
        self.started_at = storage.clock()
        self.quorum_checked = False

    @property
    def lease_seconds(self) -> float:
        """How long the lease outlives a silent holder before another process takes over."""
        return fresh_seconds(self.settings.check_interval, self.settings.check_timeout)

    def step(self) -> float:
        """Run one round if this checker holds the lease; returns how long to wait before the next."""
        if self.settings.quorum > 1:
            return self.quorum_step()
        with self.lease_lock:
            if not self.claim():
                return self.settings.check_interval
            claimed_at = self.storage.clock()
            self.storage.flag.expire_mode()
        main, control = self.probe()
        with self.lease_lock:
            if not self.holding or self.outlasted(claimed_at):  # given up while probing, or stalled
                return self.settings.check_interval
            decision = decide(
                self.tally, main, control, self.settings.fall, self.settings.rise, self.settings.check_interval
            )
            self.tally = decision.tally
            if decision.flip_to:
                self.flip(decision.flip_to, decision.reason)
            self.record(main, control, decision.network_doubt, decision.reason, decision.flip_to)
            return self.steer(main, decision.passed, decision.next_check_in)

    def quorum_step(self) -> float:
        """One round of a vantage point: probe, record its own verdict; the lease holder then counts them all."""
        if not self.prober():  # another worker of this instance probes for it: one vote per instance
            return self.settings.check_interval
        with self.lease_lock:
            if self.claim():
                self.storage.flag.expire_mode()
            claimed_at = self.storage.clock()
        main, control = self.probe()
        with self.lease_lock:
            if self.released or self.outlasted(claimed_at):
                return self.settings.check_interval
            own = decide(self.own, main, control, self.settings.fall, self.settings.rise, self.settings.check_interval)
            self.own = own.tally
            now = self.storage.clock()
            self.storage.verdicts.record(self.vantage, "instance", own.vote, own.passed, own.reason, now)
            if not self.holding:
                return own.next_check_in
            window = fresh_seconds(self.settings.check_interval, self.settings.check_timeout)
            verdicts = self.storage.verdicts.latest()
            self.warn_of_an_unreachable_quorum(len(verdicts), now, window)
            votes = count_votes(verdicts, self.settings.quorum, now, window, self.storage.flag.read().state)
            if votes.flip_to:
                self.flip(votes.flip_to, votes.reason, votes.agreed)
            self.record(main, control, own.network_doubt, own.reason, votes.flip_to)
            return self.steer(main, own.passed, own.next_check_in)

    def steer(self, main: Sequence[ProbeResult], passed: bool, next_check_in: float) -> float:
        """Admission's rate from this round (fallback.checking.admission); probe every second while it holds."""
        if admission.steer(self.storage, self.settings, main, passed):
            return min(next_check_in, admission.HOLDING_INTERVAL)
        return next_check_in

    def claim(self) -> bool:
        """Take or renew the lease; on taking it, start from the stored state (another holder may have flipped).

        Called with `lease_lock` held; never again once the lease was given up for good.
        """
        if self.released or not self.storage.checker.claim(self.owner, self.lease_seconds):
            if self.holding:
                log.info("checker lease lost to another process")
            self.holding = False
            return False
        if not self.holding:
            log.info("this process is now the checker (%s)", self.owner)
            self.tally = Tally(self.storage.flag.read().state)
            self.holding = True
        return True

    def probe(self) -> tuple[list[ProbeResult], ProbeResult | None]:
        """One round of probes: the check URLs' results, and the control URL's if one is set."""
        main, control = probe_round(self.runner, self.settings)
        if self.metrics is not None:  # probes made are counted, even those of a round dropped below
            self.metrics.probed(main)
        return main, control

    def outlasted(self, claimed_at: datetime) -> bool:
        """Whether the round took longer than the lease: its results are then dropped."""
        if self.storage.clock() - claimed_at <= timedelta(seconds=self.lease_seconds):
            return False
        # Stalled past the lease: another process may hold it by now, with fresher probes.
        log.warning("a checker round outlasted the lease (%g s): its results are dropped", self.lease_seconds)
        return True

    def flip(self, to: str, reason: str, vantage_points: Sequence[str] = ()) -> None:
        """Flip the stored state to `to`, guarded (once however many checkers try), then count and log it."""
        expected = self.storage.flag.read().state
        if expected != to and self.storage.flag.flip(expected, to, reason, vantage_points):
            if self.metrics is not None:
                self.metrics.flipped()
            # An outage is what the team must hear about; a recovery is good news, for the record.
            level = logging.WARNING if to == "down" else logging.INFO
            log.log(level, "main site %s: %s", to, reason)

    def record(
        self,
        main: Sequence[ProbeResult],
        control: ProbeResult | None,
        network_doubt: bool,
        reason: str,
        flip_to: str | None,
    ) -> None:
        """Store the round's probes and the heartbeat, with the note the status shows; prune now and then."""
        reached_itself = self.warn_of_self_probes(main, flip_to)
        note = reason if network_doubt else (SELF_PROBE_WARNING if reached_itself else None)
        self.storage.checker.record_round(
            self.owner,
            [_probe_row(result, control=False) for result in main] + ([_probe_row(control, True)] if control else []),
            network_doubt,
            note,
        )
        self.rounds += 1
        if self.rounds % 100 == 1:
            now = self.storage.clock()
            self.storage.checker.prune_probes(now - PROBE_HISTORY)
            self.storage.verdicts.prune(now - VANTAGE_HISTORY)
            self.storage.limits.prune(now - RATE_WINDOW_HISTORY)
            admission.prune(self.storage)

    def warn_of_an_unreachable_quorum(self, reported: int, now: datetime, window: float) -> None:
        """Once, when a freshness window has passed since start-up: warn if fewer vantage points ever reported."""
        if self.quorum_checked or (now - self.started_at).total_seconds() < window:
            return  # at start-up, the other vantage points may not have had time to report
        self.quorum_checked = True
        if reported < self.settings.quorum:
            log.warning(
                "FALLBACK_QUORUM is %d but only %d vantage point%s ever reported: nothing can flip until more do",
                self.settings.quorum,
                reported,
                "" if reported == 1 else "s",
            )

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
        """Loop until `stop` is set, then give the lease up; an error in one round is logged and the loop goes on."""
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
                self.wait_for_next_round(stop, delay)
        finally:
            self.release()

    def wait_for_next_round(self, stop: threading.Event, delay: float) -> None:
        """Wait `delay` seconds, or until `stop`; without the lease, end the wait as soon as it could be taken."""
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            if stop.wait(left if self.holding else min(left, HANDOVER_POLL_SECONDS)):
                return
            if not self.holding and self.take_over():
                return

    def take_over(self) -> bool:
        """Take the lease if it is free now (its holder gave it up, or it lapsed); whether this checker holds it.

        Under a quorum only an instance's prober may hold it. A failure is left for the next round to log.
        """
        if self.settings.quorum > 1 and not self.prober():
            return False
        try:
            with self.lease_lock:
                return self.claim()
        except StorageError:
            return False

    def release(self) -> None:
        """Give the lease up for good (this process is stopping), so another checker takes over at its next look.

        Safe from another thread while a round is probing: that round then writes nothing more.
        """
        with self.lease_lock:
            self.released = True
            if not self.holding:
                return
            self.holding = False
            try:
                self.storage.checker.release(self.owner)
            except StorageError as error:  # the others wait for the lease to lapse instead
                log.warning("the checker lease could not be given up: %s", error)


def _probe_row(result: ProbeResult, control: bool) -> dict:
    return {
        "url": result.url,
        "ok": int(result.ok),
        "latency_ms": round(result.latency * 1000),
        "status": result.status,
        "reason": result.reason,
        "control": int(control),
    }
