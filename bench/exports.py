"""The bench's row e: `fallback export -o FILE` of 100,000 leads against 10,000 and none, and the HTTP export.

Leads are seeded fast (one through fallback's storage API, the rest copied in SQL), and each
export runs in a process of its own under a tiny measuring process, whose RUSAGE_CHILDREN is then
the export's own peak memory.
"""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from harness import EXPORT_TOKEN, fallback_server
from load import clean_env, loopback_session, rss_kib
from procs import fallback_command


def seed_leads(database: Path, rows: int) -> None:
    """`rows` leads: the first through fallback's storage API, the rest copied from it in SQL (fast)."""
    from fallback.storage import NewLead, open_storage

    if rows == 0:
        open_storage(str(database)).close()
        return
    storage = open_storage(str(database))
    try:
        storage.leads.save(
            NewLead(
                email="lead0@bench.example",
                name="Bench Visitor",
                message="Please call me back about my order.",
                consent=True,
                consent_version="en-1",
                consent_text="I agree to be contacted about my request at this address.",
                landing_path="/campaign/tv?utm_source=tv",
                language="en",
            )
        )
    finally:
        storage.close()
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        columns = [row[1] for row in conn.execute("PRAGMA table_info(leads)") if row[1] != "id"]
        selected = [
            "'lead' || n.i || '@bench.example'" if column in ("email", "email_key") else f"l.{column}"
            for column in columns
        ]
        conn.execute(
            f"INSERT INTO leads ({', '.join(columns)}) "
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            f"SELECT {', '.join(selected)} FROM n, leads AS l WHERE l.email_key = 'lead0@bench.example'",
            (rows - 1,),
        )
        # Each copy sent the first one's message too (the export's `message` cell reads them from here).
        conn.execute(
            "INSERT INTO submissions (lead_id, at, name, message, landing_path, language) "
            "SELECT l.id, l.updated_at, s.name, s.message, s.landing_path, s.language "
            "FROM leads AS l, submissions AS s "
            "WHERE s.lead_id = (SELECT id FROM leads WHERE email_key = 'lead0@bench.example') AND l.id != s.lead_id"
        )
    conn.close()


MEASURE = textwrap.dedent("""\
    import resource, subprocess, sys, time
    started = time.perf_counter()
    code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
    elapsed = time.perf_counter() - started
    print(code, elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
""")


def bench_export(folder: Path, rows: int, repeats: int) -> dict:
    """`fallback export -o FILE` over `rows` leads, in a process of its own, `repeats` times: the median
    run's seconds (the slower of two), and the highest peak RSS."""
    database, output = folder / f"export-{rows}.db", folder / f"export-{rows}.csv"
    seed_leads(database, rows)
    env = clean_env({"FALLBACK_DATABASE": str(database)})
    runs, peaks = [], []
    for _ in range(repeats):
        # A measuring process whose only child is the export: RUSAGE_CHILDREN is the export's own peak.
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, *fallback_command(), "export", "-o", str(output)],
            env=env,
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=600,
        )
        code, elapsed, peak_kib = done.stdout.split()
        if code != "0":
            raise RuntimeError(f"fallback export failed ({code}): {done.stderr.strip()}")
        with open(output, newline="", encoding="utf-8") as file:
            exported = sum(1 for _ in csv.reader(file)) - 1
        if exported != rows:
            raise RuntimeError(f"fallback export wrote {exported} rows for {rows} leads")
        output.unlink()
        runs.append(round(float(elapsed), 3))
        peaks.append(round(int(peak_kib) / 1024, 1))
    return {"rows": rows, "seconds": sorted(runs)[len(runs) // 2], "runs_seconds": runs, "peak_rss_mib": max(peaks)}


def bench_http_export(folder: Path, rows: int) -> dict:
    """GET /_fallback/admin/export.csv of `rows` leads from one worker: rows/s and the worker's peak memory."""
    database = folder / f"export-{rows}.db"
    env = clean_env(
        {
            "FALLBACK_MAIN_URL": "http://localhost:9/",
            "FALLBACK_DATABASE": str(database),
            "FALLBACK_EXPORT_TOKEN": EXPORT_TOKEN,
            "FALLBACK_SECRET_KEY": "bench-secret-key",
        }
    )
    with fallback_server(folder, env, workers=1, extra=["--no-checker"]) as server:
        worker = server.pids()[0]
        before = rss_kib(worker, "VmHWM")
        started = time.perf_counter()
        lines = 0
        with (
            loopback_session() as session,
            session.get(
                server.url + "/_fallback/admin/export.csv",
                stream=True,
                timeout=600,
                headers={"Authorization": f"Bearer {EXPORT_TOKEN}"},
            ) as response,
        ):
            response.raise_for_status()
            for chunk in response.iter_content(65536):
                lines += chunk.count(b"\n")
        elapsed = time.perf_counter() - started
        after = rss_kib(worker, "VmHWM")
    return {
        "rows": lines - 1,
        "seconds": round(elapsed, 3),
        "rows_per_s": round((lines - 1) / elapsed),
        "worker_peak_before_mib": round(before / 1024, 1),
        "worker_peak_after_mib": round(after / 1024, 1),
    }


def bench_exports(folder: Path, repeats: int, results: dict, log) -> None:
    """Row e: the CLI export of none, 10,000 and 100,000 leads, and the HTTP export of 100,000."""
    log(f"export: start-up, 10,000 and 100,000 leads, {repeats} times each")
    empty = bench_export(folder, 0, repeats)
    small = bench_export(folder, 10_000, repeats)
    large = bench_export(folder, 100_000, repeats)
    for figures in (small, large):
        figures["rows_per_s"] = round(figures["rows"] / figures["seconds"])
        figures["rows_per_s_net_of_startup"] = round(
            figures["rows"] / max(0.001, figures["seconds"] - empty["seconds"])
        )
    results["export_startup"], results["export_10k"], results["export_100k"] = empty, small, large
    log("export over HTTP: 100,000 leads")
    results["export_http_100k"] = bench_http_export(folder, 100_000)
