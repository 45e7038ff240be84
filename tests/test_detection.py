"""End to end: `fallback serve` watching a stand-in main site on 127.0.0.1; time to detect and to recover.

The bounds are loose on purpose: bench/quorum.py times detection; here a bound only has to catch a checker
that does not flip, or a worker that keeps an old flag.
"""

from __future__ import annotations

import time

import pytest
import requests
from helpers import ADMIN_PASSWORD, EVERY_WORKER_SECONDS, admin_get, admin_status, answers_between, monotonic_at
from served import Served, run_cli

from fallback.core.clock import utcnow

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

# At these settings (interval 1 s, timeout 1 s, fall 2, rise 2) a flip comes 2 to 4 s after the change; twice the
# most leaves room for a busy machine and still fails a checker that misses its rounds or its timeout.
DETECT_SECONDS = 8.0


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
    """What the database says visitors get now: `up` (the redirect) or `down` (the page); `unknown` until the
    checker's first verdict, in mode auto."""
    flag, now = server.stored_flag(), utcnow()
    return "unknown" if flag.mode_at(now) == "auto" and flag.state == "unknown" else flag.served_state(now)


def seconds_until(server: Served, state: str, limit: float) -> float:
    """How long until the stored state is `state`, read every 50 ms for at most `limit` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if stored_state(server) == state:
            return time.monotonic() - started
        time.sleep(0.05)
    return float("inf")


def every_visitor_gets(server: Served, state: str) -> None:
    """Visitors get `state` from every worker within a second of the change, which the test has just seen stored."""
    answers_between(server.url + "/", {"up": 302, "down": 503}[state], time.monotonic() + EVERY_WORKER_SECONDS)


@pytest.fixture
def watching(site, tmp_path):
    """fallback serve, already sure the stand-in is up."""
    with Served(settings_for(site), tmp_path) as server:
        assert seconds_until(server, "up", 10) < 10
        every_visitor_gets(server, "up")
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
    assert watching.stored_flag().state == "down"  # the checker's flip, not a forced mode
    every_visitor_gets(watching, "down")
    if behaviour == "refused":
        site.start()
    site.behaviour = "ok"
    recovered = seconds_until(watching, "up", 15)
    assert recovered < DETECT_SECONDS, f"{behaviour}: up after {recovered:.1f}s"
    every_visitor_gets(watching, "up")
    print(f"{behaviour}: down in {detected:.2f}s, up in {recovered:.2f}s")


def test_a_site_failing_one_probe_in_three_never_flips(site, watching):
    site.fail_one_in = 3
    deadline = time.monotonic() + 8
    states = set()
    while time.monotonic() < deadline:
        states.add(served_state(watching))
        time.sleep(0.1)
    assert states == {"up"}
    assert site.hits >= 6  # it really was probed, and failed some


def hits_over(site, seconds: float) -> tuple[int, float]:
    """How many requests the stand-in got over about `seconds`, and how long that really was."""
    before, started = site.hits, time.monotonic()
    time.sleep(seconds)
    return site.hits - before, time.monotonic() - started


def test_two_instances_on_one_database_probe_as_often_as_one(site, tmp_path):
    env = settings_for(site)
    with Served(env, tmp_path):
        time.sleep(2)
        alone, alone_for = hits_over(site, 6)
    with Served(env, tmp_path), Served(env, tmp_path):
        time.sleep(2)
        together, together_for = hits_over(site, 6)
    # One checker at a 1 s interval probes at most once a second (one more at each end of the window); two would
    # probe about twice as often. Each is held to that, not to the other: a busy machine may slow either window.
    assert 3 <= alone <= alone_for + 2, (alone, alone_for)
    assert together <= together_for + 2, (together, together_for)


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
    assert run_cli(["mode", "down", "--for", "8s"], settings_for(site), tmp_path).returncode == 0
    flag = watching.stored_flag()
    seen, until = time.monotonic(), monotonic_at(flag.mode_until)
    assert flag.mode == "down" and flag.state == "up"  # the checker still says up: the forced mode wins
    # From a second after the change until the expiry, every visitor gets the page; from a second after it, the
    # redirect.
    answers_between(watching.url + "/", 503, seen + EVERY_WORKER_SECONDS, end=until)
    answers_between(watching.url + "/", 302, until + EVERY_WORKER_SECONDS)


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
