"""bench/admission.py's simulated visitors: one thread each, a browser's cookie jar, bounded in time; and their summary.

A visitor asks fallback for the campaign page as a browser does, looks again after the page's own live delay
while it gets the down page or the waiting page, and on the 302 makes k requests in a row on the main site.
It is lost at its first error (see bench/admission.py); one still told to wait when its time bound runs out is
counted apart.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
import threading
import time
from collections import Counter

import requests
from urllib3.exceptions import ProtocolError

PATH = "/campaign/tv"
HEADERS = {"Accept": "text/html,application/xhtml+xml", "Accept-Language": "en-GB,en;q=0.9"}
LIVE_DELAY = re.compile(rb'data-refresh="(\d+(?:\.\d+)?)"')
REQUEST_TIMEOUT = 30.0
# Not an error: the visitor was still told to wait when the bench's bound ran out.
NOT_YET = "still waiting at the give-up bound"


@dataclasses.dataclass
class Visitor:
    """One visitor's story: times are time.monotonic()."""

    arrived: float = 0.0
    down_pages: int = 0
    first_waiting_at: float | None = None  # when the first waiting page (with a place) came
    first_estimate: int | None = None  # its Retry-After, seconds
    waiting_pages: int = 0
    admitted_at: float | None = None
    main_ms: list[float] = dataclasses.field(default_factory=list)
    main_statuses: list[int] = dataclasses.field(default_factory=list)
    error: str | None = None
    resent: int = 0  # requests sent again after the server closed a kept-alive connection under them
    # How much later than its page said this visitor looked again the last time (a loaded machine's threads
    # wake late, and visitors who wake late together reach fallback, and the main site, together).
    overslept: float = 0.0

    @property
    def wait_gap(self) -> float | None:
        """How much later than their first estimate they were sent on (negative: earlier)."""
        if self.first_waiting_at is None or self.admitted_at is None or self.first_estimate is None:
            return None
        return self.admitted_at - self.first_waiting_at - self.first_estimate


def visit(entry: str, visitor: Visitor, start: float, clicks: int, give_up: float) -> None:
    """Arrive at `start`, wait as told until sent on, then browse the main site; record everything."""
    time.sleep(max(0.0, start - time.monotonic()))
    visitor.arrived = time.monotonic()
    deadline = visitor.arrived + give_up
    with requests.Session() as session:
        session.trust_env = False  # loopback only, never through a proxy
        try:
            location = wait_turn(session, entry + PATH, visitor, deadline)
        except requests.RequestException as error:
            visitor.error = f"{type(error).__name__} at fallback"
            return
        try:
            if location is not None:
                browse(session, location, visitor, clicks)
        except requests.RequestException as error:
            visitor.error = f"{type(error).__name__} at the main site"


def get(session: requests.Session, url: str, visitor: Visitor, **options) -> requests.Response:
    """One GET; sent once more when the server closed the connection under it (a kept-alive connection closed
    as it was reused: a browser sends an idempotent request again then, RFC 9112 section 9.3.1). Counted."""
    try:
        return session.get(url, timeout=REQUEST_TIMEOUT, **options)
    except requests.ConnectionError as error:
        if not (error.args and isinstance(error.args[0], ProtocolError)):
            raise
        visitor.resent += 1
        return session.get(url, timeout=REQUEST_TIMEOUT, **options)


def wait_turn(session: requests.Session, url: str, visitor: Visitor, deadline: float) -> str | None:
    """Ask fallback until it sends this visitor on: the main site's URL, or None (the visitor's error set)."""
    while time.monotonic() < deadline:
        answer = get(session, url, visitor, headers=HEADERS, allow_redirects=False)
        if answer.status_code == 302:
            visitor.admitted_at = time.monotonic()
            return answer.headers["Location"]
        delay = LIVE_DELAY.search(answer.content)
        if answer.status_code != 503 or delay is None:
            visitor.error = f"fallback answered {answer.status_code}"
            return None
        if answer.headers.get("Cache-Control") == "no-store":  # the waiting page (the down page may be cached)
            visitor.waiting_pages += 1
            if visitor.first_waiting_at is None:
                visitor.first_waiting_at = time.monotonic()
                visitor.first_estimate = int(answer.headers["Retry-After"])
        else:
            visitor.down_pages += 1
        # What the live page does: look again after its delay (see bench/admission.py).
        due = min(float(delay.group(1)), max(0.0, deadline - time.monotonic())) + time.monotonic()
        time.sleep(max(0.0, due - time.monotonic()))
        visitor.overslept = time.monotonic() - due
    visitor.error = NOT_YET
    return None


def browse(session: requests.Session, location: str, visitor: Visitor, clicks: int) -> None:
    """`clicks` requests in a row on the main site; stop at the first 5xx (the visitor leaves)."""
    for click in range(clicks):
        began = time.monotonic()
        answer = get(session, location if click == 0 else f"{location}?click={click}", visitor)
        visitor.main_ms.append((time.monotonic() - began) * 1000)
        visitor.main_statuses.append(answer.status_code)
        if answer.status_code >= 500:
            visitor.error = f"main site answered {answer.status_code}"
            return


def crowd(entry: str, count: int, start: float, over: float, clicks: int, give_up: float) -> list[Visitor]:
    """`count` visitors arriving evenly over `over` seconds from `start`; joined within the give-up bound."""
    visitors = [Visitor() for _ in range(count)]
    threads = [
        threading.Thread(
            target=visit, args=(entry, visitor, start + over * index / count, clicks, give_up), daemon=True
        )
        for index, visitor in enumerate(visitors)
    ]
    for thread in threads:
        thread.start()
    deadline = start + over + give_up + 2 * REQUEST_TIMEOUT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    for visitor, thread in zip(visitors, threads, strict=True):
        if thread.is_alive() and visitor.error is None:
            visitor.error = "still running at the end"
    return visitors


def percentile(values: list[float], share: float) -> float:
    """The `share` percentile (nearest rank), 0 for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def summary(visitors: list[Visitor], held: dict, capacity: int) -> dict:
    """The figures of one run: lost visitors, the main site's 5xx and p99, the waits against first estimates."""
    statuses = [status for visitor in visitors for status in visitor.main_statuses]
    latencies = [ms for visitor in visitors for ms in visitor.main_ms]
    errors = sum(status >= 500 for status in statuses)
    waited = [visitor for visitor in visitors if visitor.first_estimate is not None and visitor.admitted_at]
    gaps = [visitor.wait_gap for visitor in waited if visitor.wait_gap is not None]
    # The SPEC's bound on an honest wait: within 25% (or 5 s) of the first estimate.
    outside = sum(abs(v.wait_gap or 0.0) > max(5.0, 0.25 * (v.first_estimate or 0)) for v in waited)
    ends = [v.admitted_at for v in visitors if v.admitted_at] or [time.monotonic()]
    return {
        "visitors": len(visitors),
        "lost": sum(visitor.error not in (None, NOT_YET) for visitor in visitors),
        "still_waiting": sum(visitor.error == NOT_YET for visitor in visitors),
        "lost_by_reason": dict(Counter(visitor.error for visitor in visitors if visitor.error)),
        "sent_on": sum(visitor.admitted_at is not None for visitor in visitors),
        "resent": sum(visitor.resent for visitor in visitors),
        "main_requests": len(statuses),
        "main_5xx": errors,
        "main_5xx_rate": errors / len(statuses) if statuses else 0.0,
        "main_p50_ms": percentile(latencies, 0.5),
        "main_p99_ms": percentile(latencies, 0.99),
        "peak_held": held["peak"],
        "over_capacity_requests": held["overloaded"],
        "capacity": capacity,
        "waited": len(waited),
        "first_estimates": {"median": statistics.median([v.first_estimate for v in waited]) if waited else 0},
        "wait_gap": {
            "median": statistics.median(gaps) if gaps else 0.0,
            "max": max(gaps, default=0.0),
            "min": min(gaps, default=0.0),
            "outside": outside,
        },
        "overslept": {
            "median": statistics.median([v.overslept for v in waited]) if waited else 0.0,
            "max": max((v.overslept for v in waited), default=0.0),
        },
        "took": max(ends) - min(visitor.arrived for visitor in visitors),
    }
