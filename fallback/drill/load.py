"""`fallback drill --load SECONDS`: a bounded burst of visitor requests at the public URL, with a cap on
connections and a hard stop, reporting what one standby absorbs: requests per second and p99.

Each of `connections` threads keeps one keep-alive connection (a requests.Session) and sends the next
request as soon as the last is answered, until the deadline; a request still running then is abandoned after
its own timeout, and the threads are joined with a bound, so the burst never outlives SECONDS plus a timeout.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
import time

from fallback.core.redact import redact_url
from fallback.drill.items import FAIL, PASS, WARN, Item
from fallback.drill.public import BROWSER_HEADERS, MAX_READ

MAX_SECONDS = 300
MAX_CONNECTIONS = 64
REQUEST_TIMEOUT = 5.0


@dataclasses.dataclass
class Burst:
    """What a burst measured: each answered request's latency, the statuses, the failures, the time it took."""

    latencies: list[float] = dataclasses.field(default_factory=list)
    statuses: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    errors: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Answered requests per second."""
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        """The latency under which `share` of the answers came (nearest rank), in seconds; 0 with none."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def burst(url: str, seconds: float, connections: int, timeout: float = REQUEST_TIMEOUT) -> Burst:
    """GET `url` from `connections` threads until `seconds` have passed; the answers' latencies and statuses."""
    import requests

    result, lock = Burst(), threading.Lock()
    started = time.monotonic()
    deadline = started + seconds

    def worker() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                sent = time.monotonic()
                try:
                    # Not followed: a redirect is what a visitor gets from fallback; the main site is not loaded.
                    with session.get(
                        url,
                        timeout=min(timeout, max(0.1, deadline - sent) + 1.0),
                        allow_redirects=False,
                        headers=BROWSER_HEADERS,
                        stream=True,
                    ) as response:
                        read = 0  # the body, as a browser reads it, but never an endless one
                        for chunk in response.iter_content(16384):
                            read += len(chunk)
                            if read > MAX_READ:
                                break
                except requests.RequestException:
                    with lock:
                        result.errors += 1
                    continue
                took = time.monotonic() - sent
                with lock:
                    result.latencies.append(took)
                    result.statuses[response.status_code] += 1

    threads = [threading.Thread(target=worker, daemon=True, name=f"drill load {n}") for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline + timeout + 1.0 - time.monotonic()))
    with lock:
        result.seconds = min(time.monotonic(), deadline + timeout) - started
        return dataclasses.replace(result, latencies=list(result.latencies), statuses=result.statuses.copy())


def load_item(public_url: str | None, seconds: float, connections: int) -> Item:
    """The burst's figures as an item: requests per second and p99, and what the visitors got."""
    name = f"load {seconds:g} s x {connections} connections"
    if not public_url:
        return Item(name, FAIL, "FALLBACK_PUBLIC_URL is not set: nothing to load", "set FALLBACK_PUBLIC_URL")
    url = public_url.rstrip("/") + "/"
    measured = burst(url, seconds, connections)
    got = ", ".join(f"{count} x {status}" for status, count in sorted(measured.statuses.items())) or "no answer"
    detail = (
        f"{measured.rate:,.0f} requests/s, p99 {measured.percentile(0.99) * 1000:.1f} ms,"
        f" {len(measured.latencies):,} answered ({got}), {measured.errors} failed, at {redact_url(url)}"
    )
    if not measured.latencies:
        return Item(name, FAIL, detail, "make the standby reachable at FALLBACK_PUBLIC_URL")
    bad = sum(count for status, count in measured.statuses.items() if status not in (200, 302, 307, 503))
    if measured.errors or bad:
        return Item(name, WARN, detail, "some requests failed under load: more workers or a cache in front")
    return Item(name, PASS, detail)
