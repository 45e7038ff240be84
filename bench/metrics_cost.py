"""What counting a visitor request would cost the fast path, in CPU time, away from the noise of a shared machine.

    python bench/metrics_cost.py

It times, in this process, fallback's fast path (`HotPath`, the WSGI call alone) answering the redirect and
the contact page, as it is (no visitor request is counted) and with one prometheus_client counter increment
per request in front of it, in the multiprocess mode `fallback serve` uses (a write to a memory-mapped file
under a lock); and one increment alone. Each figure is the best of 5 rounds of 20,000 calls (as access_log.py).
"""

from __future__ import annotations

import os
import tempfile

from werkzeug.test import EnvironBuilder


def main() -> None:
    """Print each path's cost without and with a counter, and the increment's own."""
    with tempfile.TemporaryDirectory(prefix="fallback-metrics-cost-") as folder:
        # As `fallback serve` does, before prometheus_client is first imported (fallback.app imports it).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        from access_log import (
            bench_settings,
            cpu_microseconds,
        )  # bench/ is on sys.path (the script's folder); imports fallback.app
        from prometheus_client import Counter

        from fallback.serving.app import create_app

        app = create_app(bench_settings(folder))
        views = Counter("bench_page_views", "What counting visitor requests would add.", ["answer"]).labels("page")
        environ = EnvironBuilder(path="/pricing", query_string="utm=tv").get_environ()

        def fast_path() -> object:
            return app.wsgi_app(dict(environ), lambda status, headers, exc_info=None: None)

        def counted() -> object:
            views.inc()
            return fast_path()

        rows = []
        for answer in ("redirect", "page"):
            if answer == "page":
                app.extensions["fallback"].storage.flag.set_mode("down")
                app.extensions["fallback"].flag.invalidate()
                with app.test_client() as client:
                    client.get("/pricing")  # rendered once by Flask; the fast path serves it from then on
            bare, with_counter = cpu_microseconds(fast_path), cpu_microseconds(counted)
            rows.append((answer, bare, with_counter))
        increment = cpu_microseconds(views.inc)
    for answer, bare, with_counter in rows:
        extra = with_counter - bare
        print(
            f"fast path ({answer}): {bare:.1f} µs of CPU per request; with a counter {with_counter:.1f} µs "
            f"(+{extra:.1f} µs, {extra / bare:+.1%})"
        )
    print(f"one increment alone (multiprocess mode): {increment:.2f} µs")


if __name__ == "__main__":
    main()
