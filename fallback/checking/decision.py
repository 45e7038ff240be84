"""What one round of probes means: the fall/rise hysteresis, the control URL's doubt, when to look again.

Pure: the checker's loop (fallback.checking.checker) and the probe agent (fallback.checking.agent) both fold
their rounds through `decide`, each into its own Tally.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from fallback.checking.probe import ProbeResult

# After a first failure (or a first success while down), look again this soon.
QUICK_RECHECK_SECONDS = 0.25


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
    passed: bool  # whether every check URL passed this round, before the fall/rise hysteresis

    @property
    def vote(self) -> str:
        """This round's word as a vantage point: its state, or "unknown" while its own network is in doubt."""
        # A vantage point that doubts its own network knows nothing of the main site: it votes neither way.
        return "unknown" if self.network_doubt else self.tally.state


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
            tally, None, f"network in doubt: {reason}; control {control.url}: {control.reason}", True, interval, ok
        )
    if ok:
        streak = Tally(tally.state, 0, tally.successes + 1)
        flip = "up" if tally.state != "up" and streak.successes >= rise else None
    else:
        streak = Tally(tally.state, tally.failures + 1, 0)
        flip = "down" if tally.state != "down" and streak.failures >= fall else None
    if flip:
        return Decision(Tally(flip, streak.failures, streak.successes), flip, reason, False, interval, ok)
    heading_elsewhere = (not ok and tally.state != "down") or (ok and tally.state != "up")
    return Decision(streak, None, reason, False, QUICK_RECHECK_SECONDS if heading_elsewhere else interval, ok)
