"""What the access log costs per request, in CPU time, away from the noise of a shared machine.

    python bench/access_log.py

It times, in this process, fallback's fast path answering a redirect (`HotPath`, the WSGI call alone) and
gunicorn writing one access-log line in Apache's combined format to a file (`FALLBACK_ACCESS_LOG`), each the
best of 5 rounds of 20,000 calls. The whole-server view is `run.py --setting FALLBACK_ACCESS_LOG=-` against
`run.py`, back to back.
"""

from __future__ import annotations

import datetime
import tempfile
import time
import types
from collections.abc import Callable

from gunicorn import glogging
from gunicorn.config import Config
from werkzeug.test import EnvironBuilder

from fallback.core.logs import COMBINED
from fallback.core.settings import Settings
from fallback.serving.app import create_app

CALLS = 20_000
ROUNDS = 5


def cpu_microseconds(call: Callable[[], object]) -> float:
    """The best round's CPU time per call, in microseconds."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(CALLS):
            call()
        best = min(best, (time.process_time() - started) / CALLS * 1e6)
    return best


def bench_settings(folder: str) -> Settings:
    """Settings for an app timed in this process, its database in `folder`."""
    return Settings.from_env(
        {
            "FALLBACK_MAIN_URL": "https://www.example.com",
            "FALLBACK_DATABASE": f"{folder}/f.db",
            "FALLBACK_SECRET_KEY": "bench-secret-key",
            # 12 characters at least, or the settings refuse it.
            "FALLBACK_ADMIN_PASSWORD": "bench-admin-password",
        }
    )


def main() -> None:
    """Print both costs and their ratio."""
    with tempfile.TemporaryDirectory(prefix="fallback-access-log-") as folder:
        app = create_app(bench_settings(folder))
        visitor = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)", "Referer": "https://news.example/"}
        environ = EnvironBuilder(path="/pricing", query_string="utm=tv", headers=visitor).get_environ()
        fast_path = cpu_microseconds(lambda: app.wsgi_app(dict(environ), lambda status, headers, exc_info=None: None))
        config = Config()
        config.set("accesslog", f"{folder}/access.log")
        config.set("access_log_format", COMBINED)
        logger = glogging.Logger(config)
        answer = types.SimpleNamespace(status="302 Found", sent=0, headers=[("Location", "https://www.example.com/")])
        request = types.SimpleNamespace(headers=[(name.upper(), value) for name, value in visitor.items()])
        took = datetime.timedelta(microseconds=1500)
        line = cpu_microseconds(lambda: logger.access(answer, request, environ, took))
    print(f"fast path (redirect): {fast_path:.1f} µs of CPU per request")
    print(f"access-log line:      {line:.1f} µs of CPU per request ({line / fast_path:.1f}x the fast path)")


if __name__ == "__main__":
    main()
