"""End to end: `fallback serve` watching a stand-in main site on 127.0.0.1; time to detect and to recover."""

from __future__ import annotations

import time

import pytest
import requests
from helpers import ADMIN_PASSWORD, admin_get, admin_status
from served import Served, run_cli

DETECT_SECONDS = 5.0


def settings_for(site, **extra) -> dict:
    return {
        "FALLBACK_MAIN_URL": site.url,
        "FALLBACK_CHECK_INTERVAL": "1",
        "FALLBACK_FALL": "2",
        "FALLBACK_RISE": "2",
        "FALLBACK_CHECK_TIMEOUT": "1",
        "FALLBACK_MAX_LATENCY": "1",
        "FALLBACK_EXPECT_TEXT": "Welcome",
        "FALLBACK_RATE_LIMIT": "0",
        "FALLBACK_ADMIN_PASSWORD": ADMIN_PASSWORD,
        **extra,
    }


def served_state(server: Served) -> str:
    """What a visitor gets right now: `up` (redirect) or `down` (the page)."""
    status = requests.get(server.url + "/", allow_redirects=False, timeout=3).status_code
    return {302: "up", 503: "down"}.get(status, f"HTTP {status}")


def stored_state(server: Served) -> str:
    """The checker's verdict as stored (status.json reads the database once a second, not the page's cache)."""
    return requests.get(server.url + "/_fallback/status.json", timeout=3).json()["state"]


def seconds_until(server: Served, state: str, limit: float) -> float:
    """How long until the stored state is `state`, polled every 50 ms for at most `limit` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if stored_state(server) == state:
            return time.monotonic() - started
        time.sleep(0.05)
    return float("inf")


def seconds_until_every_visitor_gets(server: Served, state: str, limit: float = 10.0) -> float:
    """How long until visitors get `state` from every worker: when a run of 20 such answers in a row began.

    The run's start is the figure, not its end: on a loaded machine 20 requests over new connections take
    seconds by themselves, which is the test's own time, not the visitors' wait.
    """
    started = time.monotonic()
    streak, streak_began = 0, started
    while time.monotonic() - started < limit:
        asked_at = time.monotonic()
        if served_state(server) != state:
            streak = 0
            continue
        streak, streak_began = streak + 1, (asked_at if streak == 0 else streak_began)
        if streak >= 20:
            return streak_began - started
    return float("inf")


@pytest.fixture
def watching(site, tmp_path):
    """fallback serve, already sure the stand-in is up."""
    with Served(settings_for(site), tmp_path) as server:
        assert seconds_until(server, "up", 10) < 10
        assert seconds_until_every_visitor_gets(server, "up") < 1.0
        yield server


@pytest.mark.parametrize("behaviour", ["refused", "error", "hang", "slow", "nokeyword"])
def test_an_outage_is_detected_within_5s_and_recovery_within_5s(site, watching, behaviour):
    if behaviour == "refused":
        site.stop()
    else:
        site.delay = 1.5
        site.behaviour = behaviour
    detected = seconds_until(watching, "down", 15)
    assert detected < DETECT_SECONDS, f"{behaviour}: down after {detected:.1f}s"
    shown = seconds_until_every_visitor_gets(watching, "down")
    assert shown < 1.0, f"visitors got the page {shown:.2f}s after the flip"
    if behaviour == "refused":
        site.start()
    site.behaviour = "ok"
    recovered = seconds_until(watching, "up", 15)
    assert recovered < DETECT_SECONDS, f"{behaviour}: up after {recovered:.1f}s"
    redirected = seconds_until_every_visitor_gets(watching, "up")
    assert redirected < 1.0, f"visitors were redirected {redirected:.2f}s after the flip"
    print(
        f"{behaviour}: down in {detected:.2f}s (visitors {shown:.2f}s later), "
        f"up in {recovered:.2f}s (visitors {redirected:.2f}s later)"
    )


def test_a_site_failing_one_probe_in_three_never_flips(site, watching):
    site.fail_one_in = 3
    deadline = time.monotonic() + 8
    states = set()
    while time.monotonic() < deadline:
        states.add(served_state(watching))
        time.sleep(0.1)
    assert states == {"up"}
    assert site.hits >= 6  # it really was probed, and failed some


def test_two_instances_on_one_database_probe_as_often_as_one(site, tmp_path):
    env = settings_for(site)
    with Served(env, tmp_path):
        time.sleep(2)
        before = site.hits
        time.sleep(6)
        alone = site.hits - before
    with Served(env, tmp_path), Served(env, tmp_path):
        time.sleep(2)
        before = site.hits
        time.sleep(6)
        together = site.hits - before
    assert 3 <= alone <= 8
    assert together <= alone + 1


def test_status_and_healthz_follow_the_checker(site, watching, tmp_path):
    assert requests.get(watching.url + "/_fallback/healthz", timeout=3).status_code == 200
    site.behaviour = "error"
    assert seconds_until(watching, "down", 10) < 10
    status = admin_status(watching.url)
    assert status["state"] == "down" and status["mode"] == "auto"
    assert "HTTP 503" in status["incident"]["reason"]
    text = run_cli(["status"], {**settings_for(site)}, tmp_path).stdout
    assert "state:  down" in text and "incident: since" in text


def test_a_forced_mode_wins_over_the_checker_and_expires(site, watching, tmp_path):
    run_cli(["mode", "down", "--for", "3s"], settings_for(site), tmp_path)
    assert seconds_until_every_visitor_gets(watching, "down") < 1.0
    assert seconds_until(watching, "up", 6) < 6
    assert seconds_until_every_visitor_gets(watching, "up") < 1.0


def test_check_prints_the_verdict_and_exits_0_or_1(site, tmp_path):
    env = settings_for(site)
    result = run_cli(["check"], env, tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("up: ")
    site.behaviour = "error"
    result = run_cli(["check", site.url + "/x"], env, tmp_path)
    assert result.returncode == 1 and "HTTP 503" in result.stdout


def test_a_killed_checker_is_taken_over_and_its_heartbeat_resumes(site, watching):
    import os
    import signal

    owner = admin_status(watching.url)["checker"]["owner"]
    holder_pid = int(owner.split(":")[1])
    os.kill(holder_pid, signal.SIGKILL)  # the worker running the checker dies mid-round
    deadline = time.monotonic() + 20  # the lease lapses after 3 intervals + a timeout, here 4 s
    new_owner = owner
    while time.monotonic() < deadline and new_owner == owner:
        time.sleep(0.2)
        new_owner = admin_status(watching.url)["checker"]["owner"]
    assert new_owner != owner
    # The new holder's first round (the probe, then the heartbeat) ends a moment after its claim.
    deadline = time.monotonic() + 5
    while requests.get(watching.url + "/_fallback/healthz", timeout=3).status_code != 200:
        assert time.monotonic() < deadline, "the heartbeat did not resume"
        time.sleep(0.1)
    site.behaviour = "error"
    assert seconds_until(watching, "down", 10) < DETECT_SECONDS


def test_each_flip_is_announced_once_to_a_local_receiver(site, tmp_path):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    env = settings_for(
        site, FALLBACK_NOTIFY_URLS=f"json://127.0.0.1:{receiver.server_port}/hook", FALLBACK_SITE_NAME="Acme"
    )
    try:
        with Served(env, tmp_path) as server:
            assert seconds_until(server, "up", 10) < 10
            site.behaviour = "error"
            assert seconds_until(server, "down", 10) < 10
            site.behaviour = "ok"
            assert seconds_until(server, "up", 10) < 10
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(received) < 2:
                time.sleep(0.1)
            time.sleep(1.5)  # time for a duplicate to show up, if there were one
    finally:
        receiver.shutdown()
        receiver.server_close()
    assert [message["title"] for message in received] == ["[Acme] main site down", "[Acme] main site up"]


def test_a_main_url_that_leads_to_fallback_itself_is_reported_as_such(tmp_path):
    from procs import free_port

    port = free_port()
    env = {
        "FALLBACK_MAIN_URL": f"http://127.0.0.1:{port}/",
        "FALLBACK_CHECK_INTERVAL": "1",
        "FALLBACK_FALL": "2",
        "FALLBACK_CHECK_TIMEOUT": "1",
        "FALLBACK_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    with Served(env, tmp_path, port=port) as server:
        assert seconds_until(server, "down", 10) < 10
        status = admin_status(server.url)
        assert status["self_probe"]
        assert "reached fallback itself: the main site needs an origin hostname" in status["incident"]["reason"]
        assert "origin hostname of its own" in admin_get(server.url, "").text
        text = run_cli(["status"], env, tmp_path).stdout
        assert "warning: the checker's probe reached fallback itself" in text
        checked = run_cli(["check"], env, tmp_path)
        assert checked.returncode == 1 and "reached fallback itself" in checked.stdout
    log = server.log.read_text()
    advice = [line for line in log.splitlines() if "FALLBACK_CHECK_URLS to it" in line]
    assert len(advice) == 1 and "WARNING" in advice[0], log
