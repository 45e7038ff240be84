"""Prometheus metrics from a real `fallback serve` of two workers: the totals are summed over both, and a worker
killed and replaced drops none of them. (The metrics themselves: test_metrics.py.)"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from helpers import wait_for
from prometheus_client.mmap_dict import MmapedDict
from served import Served
from test_metrics import MAIN, PATH, TOKEN, samples

from fallback.web.form_token import FormToken

pytestmark = pytest.mark.slow


def worker_counts(folder: Path) -> dict[int, float]:
    """Accepted posts by worker pid, read from the workers' own files in the metrics folder."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        values = MmapedDict.read_all_values_from_file(str(path))
        counts[int(path.stem.split("_")[1])] = sum(
            value for key, value, _, _ in values if '"fallback_leads_total"' in key and '"accepted"' in key
        )
    return counts


def post_leads(url: str, secret: str, emails: list[str]) -> None:
    """Post one valid contact form per address, each on a new connection, four at a time."""

    def post(email: str) -> None:
        fields = {"email": email, "consent": "y", "path": "/", "token": FormToken(secret).issue()}
        with requests.Session() as session:
            session.trust_env = False
            response = session.post(url + "/_fallback/contact", data=fields, allow_redirects=False, timeout=10)
        assert response.status_code == 303, response.text

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(post, emails))


def served_scrape(url: str) -> dict[str, float]:
    """One scrape of a running instance, parsed."""
    response = requests.get(url + PATH, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    response.raise_for_status()
    return samples(response.text)


def test_served_totals_sum_both_workers_and_do_not_drop_when_a_worker_is_killed(env, tmp_path):
    # TMPDIR puts the server's private metrics folder where the test can see which worker counted what.
    env = {**env, "FALLBACK_METRICS_TOKEN": TOKEN, "FALLBACK_MAIN_URL": MAIN, "FALLBACK_CHECK_INTERVAL": "1"}
    env["TMPDIR"] = str(tmp_path)
    accepted = 'fallback_leads_total{result="accepted"}'
    with Served(env, tmp_path, workers=2) as server:
        [folder] = tmp_path.glob("fallback-metrics-*")
        assert folder.stat().st_mode & 0o077 == 0  # private to the server's user
        sent = 0
        # The kernel hands each new connection to either worker: post until both have counted some.
        while len([pid for pid, count in worker_counts(folder).items() if count]) < 2:
            assert sent < 400, f"the posts all landed on one worker: {worker_counts(folder)}"
            post_leads(server.url, env["FALLBACK_SECRET_KEY"], [f"lead-{sent + n}@example.org" for n in range(8)])
            sent += 8
        assert {served_scrape(server.url)[accepted] for _ in range(6)} == {sent}  # whichever worker answers
        before = worker_counts(folder)
        victim = max(before, key=before.get)
        assert Path(f"/proc/{victim}/stat").read_text().split()[3] == str(server.process.pid)  # a worker of ours
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: set(worker_counts(folder)) - set(before), 20, "a replacement worker")
        assert {served_scrape(server.url)[accepted] for _ in range(6)} == {sent}
        post_leads(server.url, env["FALLBACK_SECRET_KEY"], [f"later-{n}@example.org" for n in range(8)])
        found = served_scrape(server.url)
        assert found[accepted] == sent + 8
        assert found['fallback_probes_total{result="failed"}'] >= 1  # the main URL refuses: the checker counts
    assert not list(tmp_path.glob("fallback-metrics-*"))  # the master removed its folder on the way out
