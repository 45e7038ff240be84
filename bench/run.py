"""The performance bench: fallback against baselines it builds itself, side by side in one run, on loopback.

    python bench/run.py                # about 4 minutes
    python bench/run.py --quick        # about 90 seconds
    python bench/run.py --no-postgres  # without the PostgreSQL rows
    python bench/run.py --json         # the same figures, machine-readable

Rows (targets from SPEC.md section 6 and the bench's brief):

  a. the floor: a bare Flask app answering the very bytes (status, headers, body) of fallback's
     down page, under exactly the gunicorn settings of `fallback serve` (bench/bare.py);
  b. fallback's down page (503, Accept: text/html) against a: target >= 0.9;
  c. fallback's redirect (302, `fallback mode up`) against a: target >= 0.9;
  c′. the redirect with admission on and no queue (FALLBACK_ADMIT_RATE far above the load) against c:
     target >= 0.9;
  d. accepted submissions per second: POST /_fallback/contact against a bare handler that parses
     the same fields and inserts one row with the same durability (WAL, synchronous=FULL, busy
     timeout): target >= 0.8; and every accepted (303) lead present in the CSV export;
  e. `fallback export -o FILE` of 100,000 leads: rows per second (target >= 50,000) and peak
     memory, against 10,000 leads (target: it does not grow with the rows); the HTTP export too;
  f. p50/p99 latency at 50 connections for a, b and c, and resident memory per worker;
  g. the follow-up mail (info): messages per second accepted by a local SMTP server (aiosmtpd) at the default
     FALLBACK_MAIL_RATE and with no real limit, a few seconds (bench/followup.py);
  PostgreSQL (info): b and d again against a second `fallback serve`, the same in all but
     FALLBACK_DATABASE, a database on a throw-away cluster (tests/pg.py), in the same rounds, with
     the ratio to SQLite's figure; every accepted lead exported is checked there too. Left out,
     saying why, with --no-postgres or without Debian's postgresql package.

Load comes from wrk (Debian's `wrk` package, installed with apt-get when missing and running as
root). The page runs alternate the floor and fallback (SQLite, then PostgreSQL) round after
round, so drift on a shared machine hits them alike, and the median round is reported. Every
server listens on 127.0.0.1 with its own temporary folder and database, and is stopped at the
end, on error too, the PostgreSQL cluster with them.

This file is the entry point and its options; the rest is split by job: harness.py (servers, wrk,
medians), scenarios.py (rows a-d, d′, f and nginx), exports.py (row e), report.py (verdicts, table).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# The PostgreSQL rows run on tests/pg.py's throw-away cluster (initdb and pg_ctl in a temporary folder, on
# 127.0.0.1, as the postgres user under root) and every server is a tests/procs.py process group, rather than
# copies of them; tests/ is not a package, so its folder goes on the path, last, so that none of its modules
# can shadow one the bench imports.
sys.path.append(str(HERE.parent / "tests"))

import followup  # noqa: E402 - bench/ is not a package either: its folder goes first
import nginx_tail  # noqa: E402 - bench/ is not a package either: its folder goes first
from exports import bench_exports  # noqa: E402 - bench/ is not a package either: its folder goes first
from harness import PAGE_CONNECTIONS, POST_CONNECTIONS  # noqa: E402
from report import load_average, machine, text, verdicts  # noqa: E402
from scenarios import bench_http, bench_nginx, bench_rate_limited  # noqa: E402


def main() -> int:
    """Run the bench with the command line's options; the exit status."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter and fewer runs: about 90 seconds")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--seconds", type=float, help="length of each wrk run (default 8, 3 with --quick)")
    parser.add_argument(
        "--rounds", type=int, help="rounds of alternating runs (default 3; 2 for submissions and exports with --quick)"
    )
    parser.add_argument(
        "--no-nginx",
        action="store_true",
        help="skip the nginx rows (--quick skips them, and the rate-limited submissions)",
    )
    parser.add_argument(
        "--no-postgres",
        action="store_true",
        help="skip the PostgreSQL rows (b and d measured again against fallback on a throw-away PostgreSQL cluster)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a FALLBACK_ setting for the fallback servers of rows b-d, e.g. FALLBACK_ACCESS_LOG=- (repeatable)",
    )
    args = parser.parse_args()
    seconds = args.seconds or (3 if args.quick else 8)
    rounds = args.rounds or 3
    post_rounds = args.rounds or (2 if args.quick else 3)  # submissions and exports
    if not 1 <= seconds <= 120 or not 1 <= rounds <= 10:
        parser.error("--seconds from 1 to 120, --rounds from 1 to 10")
    extra = dict(setting.split("=", 1) for setting in args.setting if "=" in setting)
    if len(extra) != len(args.setting) or not all(name.startswith("FALLBACK_") for name in extra):
        parser.error("--setting takes FALLBACK_NAME=VALUE")

    def terminate(signum, frame):
        raise SystemExit(2)

    signal.signal(signal.SIGTERM, terminate)  # servers are stopped on `kill` too
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {message}", file=sys.stderr, flush=True)

    results: dict = {
        "machine": machine(),
        "settings": {
            "seconds_per_run": seconds,
            "rounds": rounds,
            "submission_and_export_rounds": post_rounds,
            "page_connections": PAGE_CONNECTIONS,
            "post_connections": POST_CONNECTIONS,
            "wrk_threads": 2,
            "fallback_settings": extra,
        },
    }
    try:
        with tempfile.TemporaryDirectory(prefix="fallback-bench-") as tmp:
            folder = Path(tmp)
            bench_http(folder, seconds, rounds, post_rounds, not args.no_postgres, results, log, extra)
            if not args.quick:
                bench_rate_limited(folder, seconds, results, log)
            if not (args.quick or args.no_nginx):
                bench_nginx(folder, seconds, results, log)
                try:
                    results["nginx_tail"] = nginx_tail.measure(folder / "nginx-tail", seconds, rounds, log)
                except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                    results["nginx_tail"] = {"skipped": f"failed: {str(error).splitlines()[0]}"}
            bench_exports(folder, post_rounds, results, log)
            try:
                results["followup"] = followup.measure(folder / "followup", log)
            except (RuntimeError, OSError, ImportError) as error:
                results["followup"] = {"skipped": f"failed: {str(error).splitlines()[0]}"}
    except (RuntimeError, OSError, subprocess.SubprocessError, requests.RequestException) as error:
        print(f"bench: could not run: {error}", file=sys.stderr)
        return 2
    results["machine"]["load_average_at_end"] = load_average()
    results["verdicts"] = verdicts(results)
    results["total_seconds"] = round(time.monotonic() - started)
    print(json.dumps(results, indent=2) if args.json else text(results))
    return 1 if args.strict and any(not check["pass"] for check in results["verdicts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
