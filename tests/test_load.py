"""A short run of the load script (bench/load.py) against a real `fallback serve` on 127.0.0.1.

About 15 s: a 2 s warm-up, then 4 client threads for 12 s of page views and submissions.
Nothing may be lost or fail: no 5xx besides the page's own 503, every acknowledged (303) lead
in the CSV export, no connection error, no worker replaced, and each worker's resident memory
grows by less than 20 MB over the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import bench_module

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)


@pytest.fixture(scope="module")
def load():
    """bench/load.py as a module, under a name of its own (bench/ is not a package)."""
    with bench_module("load") as module:
        yield module


@pytest.fixture(scope="module")
def figures(load):
    return load.run_load(duration=12, clients=4, workers=2, warm_up=2)


def test_no_5xx_and_no_connection_error(figures):
    assert figures["server_errors_5xx"] == 0, figures
    assert figures["client_errors"] == {}, figures
    assert figures["bad_pages"] == 0, figures
    assert figures["clients_still_running"] == 0, figures
    # Every page view is the contact page, 503 by design while the site is down.
    assert set(figures["page_views_by_status"]) == {"503"} and figures["page_views"] > 100, figures


def test_every_acknowledged_lead_is_exported(figures):
    assert figures["leads_acknowledged"] > 0, figures
    assert figures["submissions_rejected"] == 0, figures
    assert figures["leads_exported"] == figures["leads_acknowledged"], figures
    assert figures["leads_lost"] == 0 and figures["export_duplicates"] == 0, figures
    # Nothing else in the export: the database was the run's own.
    assert figures["export_rows"] == figures["leads_acknowledged"], figures


def test_worker_memory_stays_flat(figures):
    assert figures["workers_restarted"] == 0, figures
    assert len(figures["worker_memory"]) == 2, figures
    for pid, entry in figures["worker_memory"].items():
        assert entry["start_kib"] and entry["end_kib"], (pid, entry)
        assert entry["growth_kib"] < 20 * 1024, (pid, entry)


def test_the_server_logged_no_error(figures):
    assert figures["server_log_problems"] == [], figures


def test_failures_are_reported_in_words(load):
    clean = {
        "server_errors_5xx": 0,
        "leads_lost": 0,
        "lost_examples": [],
        "leads_acknowledged": 3,
        "submissions_rejected": 0,
        "submissions_by_status": {"303": 3},
        "bad_pages": 0,
        "client_errors": {},
        "clients_still_running": 0,
        "workers_restarted": 0,
        "export_duplicates": 0,
    }
    assert load.failures(clean) == []
    lost = {**clean, "leads_lost": 1, "lost_examples": ["c0-1@load.example"]}
    assert "c0-1@load.example" in load.failures(lost)[0]
    assert load.failures({**clean, "server_errors_5xx": 2})


def test_cpu_seconds_counts_the_workers_of_a_server(load):
    # A stand-in "master" whose one child spins for 0.6 s of CPU, then sleeps so it can be read. The kernel's
    # tick accounting (/proc/<pid>/stat) may differ from the child's own clock by a tick or so, and the master
    # alone uses a small fraction of that: half the spin is counted only if the child is.
    spin = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\ntime.sleep(60)"
    master = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {spin!r}])\ntime.sleep(60)",
        ]
    )
    try:
        deadline = time.monotonic() + 50  # a busy machine may take that long to give the child its 0.6 s
        while load.cpu_seconds(master.pid) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 0.3 <= load.cpu_seconds(master.pid) < 5
    finally:
        for child in load.worker_pids(master.pid):
            os.kill(child, signal.SIGKILL)
        master.kill()
        master.wait(timeout=5)
