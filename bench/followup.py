"""The follow-up mail's throughput: messages per second accepted by a local SMTP server (aiosmtpd on 127.0.0.1),
at the default FALLBACK_MAIL_RATE (5/second) and with no real limit (1000/second).

    python bench/followup.py           # about 5 seconds
    python bench/followup.py --json

The sender is fallback's own (fallback.followup.FollowupSender, the code the background thread runs), on a SQLite
database in a temporary folder, sending through smtplib to aiosmtpd (a test dependency, tests/mailserver.py). The
rate is the messages after the first divided by the time from the first acceptance to the last: a burst that fits
in one window of the limit is not counted as a rate it cannot keep up.

For the bench (bench/run.py): `followup.measure(folder, log)` returns the figures, `followup.rows(figures)` the
table rows (row, figure, ratio, detail, target).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from fallback.core.settings import Settings
from fallback.outbound import smtp
from fallback.outbound.followup import FollowupSender
from fallback.storage import NewLead, open_storage

TESTS = Path(__file__).resolve().parent.parent / "tests"

# (name, FALLBACK_MAIL_RATE, messages): enough for three windows of the default rate, and for a steady figure unlimited.
RUNS = (("default", "5/second", 16), ("unlimited", "1000/second", 100))


def run(folder: Path, rate: str, messages: int) -> dict:
    """Queue `messages` after a recovery and send them all at `rate`; the acceptance rate and the time taken."""
    if str(TESTS) not in sys.path:
        sys.path.append(str(TESTS))  # last: no test helper may shadow a module the bench imports
    # tests/ is not a package; and aiosmtpd, a test dependency, is imported only when this row runs.
    from mailserver import SMTPServer

    with SMTPServer() as server:
        database = folder / f"followup-{messages}.db"
        env = {
            "FALLBACK_MAIN_URL": "https://www.example.com",
            "FALLBACK_DATABASE": str(database),
            "FALLBACK_SMTP_URL": server.url,
            "FALLBACK_MAIL_FROM": "Bench <bench@example.com>",
            "FALLBACK_PUBLIC_URL": "https://sorry.example.com",
            "FALLBACK_FOLLOWUP_DELAY": "0",
            "FALLBACK_MAIL_RATE": rate,
        }
        storage = open_storage(str(database))
        storage.flag.flip("unknown", "down", "bench")
        for index in range(messages):
            storage.leads.save(NewLead(f"lead{index}@example.org", notify=True, notify_text="E-mail me"))
        storage.flag.flip("down", "up", "bench")
        accepted_at: list[float] = []

        def timed(url, message, accepted):
            smtp.send(url, message, accepted=lambda: (accepted(), accepted_at.append(time.monotonic())))

        sender = FollowupSender(Settings.from_env(env), storage, "bench-secret", transport=timed)
        started = time.monotonic()
        sender.queue_after_recovery()
        sender.deliver_pending(threading.Event())  # an event, so that the sender waits out the rate
        seconds = time.monotonic() - started
        received = len(server.mailbox.messages)
    if received != messages or len(accepted_at) != messages:
        raise RuntimeError(f"{messages} queued, {len(accepted_at)} recorded sent, {received} received")
    span = accepted_at[-1] - accepted_at[0]
    return {
        "rate_setting": rate,
        "messages": messages,
        "seconds": round(seconds, 2),
        "per_second": round((messages - 1) / span, 1) if span else None,
    }


def measure(folder: Path, log=print) -> dict:
    """Each run of RUNS, in a folder of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = {}
    for name, rate, messages in RUNS:
        log(f"follow-up mail: {messages} messages at {rate}")
        figures[name] = run(folder, rate, messages)
    return figures


def rows(figures: dict) -> list[tuple]:
    """The bench's table rows: (row, figure, ratio, detail, target)."""
    return [
        (
            f"follow-up mail to a local SMTP server, FALLBACK_MAIL_RATE={run['rate_setting']} (info)",
            f"{run['per_second']:,.1f} msg/s",
            "",
            f"{run['messages']} messages in {run['seconds']:.2f} s, one SMTP connection each, SQLite",
            "",
        )
        for run in (figures["default"], figures["unlimited"])
    ]


def main() -> int:
    """Measure, then print the rows (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of the rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fallback-followup-bench-") as tmp:
        figures = measure(Path(tmp), lambda message: print(message, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    table = ["| row | figure | ratio | detail | target |", "|---|---:|---:|---|---|"]
    print("\n".join(table + ["| " + " | ".join(row) + " |" for row in rows(figures)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
