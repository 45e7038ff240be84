"""The quorum rule (FALLBACK_QUORUM above 1): several vantage points' verdicts, one decision. Pure: no Flask, no I/O.

Each vantage point (a `fallback serve` instance, or a `fallback probe` agent) applies the fall/rise
hysteresis to its own rounds (fallback.checking.decision.decide) and reports its own state; the one checker that
holds the lease counts the fresh states here and flips only when N of them agree.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Sequence
from datetime import datetime

from fallback.storage import Verdict

STATES = ("down", "up")


def default_vantage(port: int) -> str:
    """An instance's name as a vantage point: host name and port, so instances sharing a host stay apart."""
    return f"{socket.gethostname()}:{port}"


def fresh_seconds(interval: float, timeout: float) -> float:
    """How long a round counts: a verdict, the checker's heartbeat and its lease; three intervals plus a timeout.

    Three intervals, as issue 16 and SPEC 5 say, so one late or lost report does not drop a vantage point;
    plus a timeout, as SPEC 5's heartbeat rule has it, because a round whose check URL hangs ends a whole
    timeout after it began: a vantage point (or a checker) probing a hanging site must not go stale for that.
    """
    return 3 * interval + timeout


@dataclasses.dataclass(frozen=True)
class QuorumDecision:
    """What the verdicts say together: a flip or none, whether the quorum is missing, who agreed, and why."""

    flip_to: str | None
    missing: bool
    agreed: tuple[str, ...]  # the names that make the quorum (empty while it is missing)
    reason: str
    fresh: tuple[Verdict, ...]


def is_fresh(verdict: Verdict, now: datetime, window: float) -> bool:
    """Whether `verdict` reached the database less than `window` seconds before `now` (our clock, not theirs)."""
    return (now - verdict.received_at).total_seconds() < window


def count_votes(verdicts: Sequence[Verdict], quorum: int, now: datetime, window: float, current: str) -> QuorumDecision:
    """Flip to down when >= `quorum` fresh vantage points say down, to up when >= `quorum` say up; else nothing.

    `current` is the stored state: a quorum agreeing with it is met and flips nothing. A split where both
    states reach the quorum (a quorum of half the vantage points or less) flips nothing either: the state
    stays as it is rather than follow whichever side reported last.
    """
    fresh = tuple(verdict for verdict in verdicts if is_fresh(verdict, now, window))
    sides = {state: tuple(v.name for v in fresh if v.state == state) for state in STATES}
    reaching = [state for state in STATES if len(sides[state]) >= quorum]
    if len(reaching) == 1:
        state = reaching[0]
        agreed = sides[state]
        reason = f"{len(agreed)} of {len(fresh)} fresh vantage points say {state} ({', '.join(agreed)})"
        flip = state if state != current else None
        if flip:
            reason += "; " + _first_reason(fresh, agreed)
        return QuorumDecision(flip, False, agreed, f"quorum of {quorum}: {reason}", fresh)
    return QuorumDecision(None, True, (), "quorum missing: " + _shortfall(fresh, sides, quorum), fresh)


def _first_reason(fresh: Sequence[Verdict], agreed: Sequence[str]) -> str:
    """The first agreeing vantage point's own reason, named: what an incident's reader wants to see."""
    first = next(v for v in fresh if v.name == agreed[0])
    return f"{first.name}: {first.reason or 'no reason given'}"


def _shortfall(fresh: Sequence[Verdict], sides: dict[str, tuple[str, ...]], quorum: int) -> str:
    """Why no state has its quorum, naming who says what: "1 of 2 fresh vantage points say down (a), 1 up (b)"."""
    if len(fresh) < quorum:
        names = f" ({', '.join(v.name for v in fresh)})" if fresh else ""
        return f"{len(fresh)} fresh vantage point{'s' if len(fresh) != 1 else ''}{names}, {quorum} needed"
    down, up = sides["down"], sides["up"]
    said = f"{len(down)} of {len(fresh)} fresh vantage points say down{_names(down)}, {len(up)} up{_names(up)}"
    undecided = len(fresh) - len(down) - len(up)
    if undecided:
        said += f", {undecided} unknown"
    if len(down) >= quorum and len(up) >= quorum:
        return f"split: {said}; the state stays as it is"
    return f"{said}; {quorum} needed"


def _names(names: Sequence[str]) -> str:
    return f" ({', '.join(names)})" if names else ""


def quorum_status(verdicts: Sequence[Verdict], quorum: int, now: datetime, window: float, current: str) -> dict:
    """The admin's view of the quorum: required, met or missing and why, and each vantage point's last verdict."""
    votes = count_votes(verdicts, quorum, now, window, current)
    return {
        "required": quorum,
        "met": not votes.missing,
        "summary": votes.reason,
        "agreed": list(votes.agreed),
        "fresh_seconds": window,
        # Fewer vantage points than the quorum ever reported: nothing can flip until more do.
        "unreachable": len(verdicts) < quorum,
        "vantage_points": [
            {
                "name": verdict.name,
                "kind": verdict.kind,
                "state": verdict.state,
                "ok": verdict.ok,
                "reason": verdict.reason,
                "age": round((now - verdict.received_at).total_seconds(), 1),
                "fresh": is_fresh(verdict, now, window),
            }
            for verdict in verdicts
        ],
    }
