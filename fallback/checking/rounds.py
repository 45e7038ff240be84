"""A round of probes: every URL at once, each in a thread of its own, each result by its deadline.

A probe that hangs past its deadline is abandoned, and its URL is not probed again until it ends.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable

from fallback.checking.probe import ProbeResult, probe, probe_budget, short_error, too_late
from fallback.core.redact import redact_url
from fallback.core.settings import Settings


class ProbeRunner:
    """Runs probes in threads so a hung exchange is abandoned at its deadline, one at a time per URL."""

    def __init__(
        self, timeout: float, max_latency: float | None, expect_text: str | None, self_key: bytes | None = None
    ) -> None:
        self.timeout = timeout
        self.max_latency = max_latency
        self.expect_text = expect_text
        self.self_key = self_key
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    def run(self, urls: list[str], expect_text_for: Callable[[str], str | None] | None = None) -> list[ProbeResult]:
        """Probe every URL at once; each result arrives by its deadline, whatever the server does."""
        futures = {}
        results = {}
        for url in urls:
            with self._lock:
                if url in self._busy:
                    results[url] = ProbeResult(url, False, self.timeout, None, "the previous probe is still hanging")
                    continue
                self._busy.add(url)
            expect = self.expect_text if expect_text_for is None else expect_text_for(url)
            future: concurrent.futures.Future[ProbeResult] = concurrent.futures.Future()
            threading.Thread(
                target=self._probe_into, args=(future, url, expect), daemon=True, name=f"probe {redact_url(url)}"
            ).start()
            futures[url] = future
        started = time.monotonic()
        budget = probe_budget(self.timeout, self.max_latency)
        for url, future in futures.items():
            wait = max(0.0, started + budget + 0.5 - time.monotonic())
            try:
                results[url] = future.result(timeout=wait)
            except concurrent.futures.TimeoutError:
                results[url] = ProbeResult(url, False, budget, None, too_late(self.timeout, budget))
        return [results[url] for url in urls]

    def _probe_into(self, future: concurrent.futures.Future[ProbeResult], url: str, expect: str | None) -> None:
        started = time.monotonic()
        try:
            result = probe(url, self.timeout, self.max_latency, expect, self_key=self.self_key)
        except Exception as error:  # a probe must never kill the checker
            result = ProbeResult(url, False, time.monotonic() - started, None, f"probe error: {short_error(error)}")
        # Free the URL before publishing, so the next round never sees a finished probe as hanging.
        with self._lock:
            self._busy.discard(url)
        future.set_result(result)


def probe_round(runner: ProbeRunner, settings: Settings) -> tuple[list[ProbeResult], ProbeResult | None]:
    """One round's probes, all at once: every check URL (with the expected text), and the control URL (without)."""
    urls, control_url = list(settings.check_urls), settings.control_url
    results = runner.run(
        urls + ([control_url] if control_url else []),
        expect_text_for=lambda url: None if url == control_url else settings.expect_text,
    )
    return results[: len(urls)], (results[len(urls)] if control_url else None)
