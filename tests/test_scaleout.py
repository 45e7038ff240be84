"""Several `fallback serve` instances on one PostgreSQL database, driven over HTTP: the server
restarted under a load of submissions, the checker's lock moving when its instance is killed, and
how soon a change of mode reaches every worker of every instance.

The figures these tests measure are printed (`pytest -s tests/test_scaleout.py` shows them).
"""

from __future__ import annotations

import signal
import threading
import time

import psycopg
import pytest
import requests
from helpers import ADMIN_PASSWORD, EVERY_WORKER_SECONDS, admin_status, form_token
from served import Served, run_cli, worker_instance
from standin import StandIn

from fallback.storage import open_storage
from fallback.storage.postgres_checker import CHECKER_LOCK

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

BACKENDS = ["postgres"]


def environment(database: str, site: StandIn) -> dict:
    """An instance checking the stand-in every second, without rate limit or time trap."""
    return {
        "FALLBACK_MAIN_URL": site.url,
        "FALLBACK_CHECK_URLS": site.url,
        "FALLBACK_DATABASE": database,
        "FALLBACK_RATE_LIMIT": "0",
        "FALLBACK_FORM_MIN_SECONDS": "0",
        "FALLBACK_CHECK_INTERVAL": "1",
        "FALLBACK_CHECK_TIMEOUT": "3",
        "FALLBACK_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }


def lock_holders(database: str) -> list[int]:
    """The server process ids of the sessions holding the checker's advisory lock."""
    with psycopg.connect(database, autocommit=True, connect_timeout=5) as conn:
        return [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s",
                (CHECKER_LOCK >> 32, CHECKER_LOCK & 0xFFFFFFFF),
            ).fetchall()
        ]


def wait_for(condition, seconds: float, what: str, poll: float = 0.1):
    """`condition()`'s first truthy result within `seconds`, or fail naming `what`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (requests.RequestException, psycopg.Error):
            result = None
        if result:
            return result
        time.sleep(poll)
    raise AssertionError(f"{what} did not happen within {seconds} s")


def checker_of(server: Served) -> dict:
    """The checker part of an instance's status document."""
    return admin_status(server.url)["checker"]


def submit_until(stop: threading.Event, url: str, token: str, name: str, outcomes: list) -> None:
    """Send distinct submissions until `stop`; append (monotonic time, email, status, body said 'not saved')."""
    with requests.Session() as session:
        for number in range(100_000):
            if stop.is_set():
                return
            email = f"{name}-{number}@example.org"
            try:
                response = session.post(
                    url + "/_fallback/contact",
                    allow_redirects=False,
                    timeout=20,
                    data={"token": token, "email": email, "consent": "y"},
                )
            except requests.RequestException as error:
                outcomes.append((time.monotonic(), email, f"no answer: {error}", False))
                continue
            outcomes.append((time.monotonic(), email, response.status_code, "not saved" in response.text))


def test_postgres_restarted_under_load_thanks_no_one_for_a_lost_lead_and_the_checker_comes_back(
    database, pg_cluster, tmp_path
):
    with StandIn() as site:
        env = environment(database, site)
        with Served(env, tmp_path) as server:
            assert run_cli(["mode", "down"], server.env, tmp_path).returncode == 0
            wait_for(lambda: requests.get(server.url + "/", timeout=3).status_code == 503, 5, "the page")
            wait_for(lambda: len(lock_holders(database)) == 1, 10, "a checker holding the lock")
            # Every worker must show the page: one still redirecting would hand over the main site instead.
            page = wait_for(
                lambda: (
                    (answer := requests.get(server.url + "/", allow_redirects=False, timeout=3)).status_code == 503
                    and answer.text
                ),
                5,
                "the page from every worker",
            )
            token = form_token(page)
            outcomes: list = []
            stop = threading.Event()
            clients = [
                threading.Thread(target=submit_until, args=(stop, server.url, token, f"c{n}", outcomes))
                for n in range(6)
            ]
            for client in clients:
                client.start()
            try:
                time.sleep(2)
                pg_cluster.stop()
                try:
                    time.sleep(2)
                finally:
                    pg_cluster.start()  # never leave the rest of the suite without its server
                back = time.monotonic()
                time.sleep(4)
            finally:
                stop.set()
                for client in clients:
                    client.join(30)
            # The checker's session died with the server; a checker takes the lock again on its own.
            wait_for(lambda: len(lock_holders(database)) == 1, 10, "the lock taken again")
            wait_for(lambda: checker_of(server)["healthy"], 10, "a fresh heartbeat")
            log = server.log.read_text()

    statuses = {status for _, _, status, _ in outcomes}
    assert statuses <= {303, 503}, statuses
    # Every refusal is the "not saved" page, and the outage was met, then recovered from without a restart.
    assert all(not_saved for _, _, status, not_saved in outcomes if status == 503)
    assert any(status == 503 for _, _, status, _ in outcomes)
    assert any(status == 303 and at > back for at, _, status, _ in outcomes)
    thanked = {email for _, email, status, _ in outcomes if status == 303}
    stored = {lead["email"] for lead in open_storage(database).leads.iter()}
    assert thanked <= stored, f"{len(thanked - stored)} thanked leads were lost"
    assert "Exception on /" not in log  # no request ended in an unhandled error
    refused = sum(status == 503 for _, _, status, _ in outcomes)
    print(
        f"\nrestart under load: {len(outcomes)} submissions, {len(thanked)} thanked (all stored), "
        f"{refused} 'not saved', {len(stored) - len(thanked)} stored without thanks"
    )


def test_the_other_instance_takes_the_checker_over_at_once_when_the_holder_is_killed(database, tmp_path):
    with StandIn() as site:
        env = environment(database, site)
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with Served(env, tmp_path / "a") as first, Served(env, tmp_path / "b") as second:
            owner = wait_for(lambda: checker_of(first)["owner"], 10, "a checker")
            holder = worker_instance(owner, [first, second])
            survivor = second if holder is first else first
            [old_session] = lock_holders(database)
            holder.stop(signal.SIGKILL)
            killed = time.monotonic()
            # Timed on the server: the lock granted to another session, read straight from pg_locks.
            wait_for(lambda: lock_holders(database) not in ([], [old_session]), 20, "the lock moving", poll=0.05)
            took = time.monotonic() - killed
            new_owner = wait_for(
                lambda: (
                    checker_of(survivor)["owner"] != owner
                    and checker_of(survivor)["healthy"]
                    and checker_of(survivor)["owner"]
                ),
                10,
                "a take-over",
            )
            assert len(lock_holders(database)) == 1
            assert worker_instance(new_owner, [survivor]) is survivor
    # A lease would have waited 3 intervals + the timeout (6 s); the server frees the lock with the session, so the
    # take-over comes well before, even on a busy machine (it is timed in bench/quorum.py).
    assert took < 6, f"take-over took {took:.1f} s"
    print(f"\nchecker take-over after kill -9 of its instance: {took:.2f} s")


def served_statuses(servers: list[Served], seconds: float, at_least: int = 0) -> list[tuple[float, int]]:
    """(monotonic time the request was sent, status) of `/` fetched over new connections, so any worker may
    answer, for `seconds` and at least `at_least` requests (bounded: a minute at most)."""
    seen: list[tuple[float, int]] = []
    started = time.monotonic()
    while (time.monotonic() < started + seconds or len(seen) < at_least) and time.monotonic() < started + 60:
        for server in servers:
            sent = time.monotonic()
            seen.append((sent, requests.get(server.url + "/", allow_redirects=False, timeout=5).status_code))
    return seen


def test_a_mode_change_reaches_every_worker_of_both_instances_within_a_second(database, tmp_path):
    storage = open_storage(database)
    lags = []
    with StandIn() as site:
        env = environment(database, site)
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with Served(env, tmp_path / "a") as first, Served(env, tmp_path / "b") as second:
            served_statuses([first, second], 1)  # every worker warmed up
            for mode, expected in [("down", 503), ("up", 302), ("down", 503), ("up", 302)]:
                storage.flag.set_mode(mode, reason="propagation test", by="test")
                changed = time.monotonic()  # committed before set_mode returned
                # Enough requests for each of the four workers to have answered, well past the second.
                seen = served_statuses([first, second], 1.5, at_least=40)
                # The lag is when the last stale answer's request was sent, not when its answer came: a busy
                # machine answering late does not make a worker's flag older.
                stale = [sent for sent, status in seen if status != expected]
                assert {status for _, status in seen} <= {302, 503}
                assert seen[-1][1] == expected
                lags.append(max(stale) - changed if stale else 0.0)
    assert max(lags) < EVERY_WORKER_SECONDS, lags
    print(
        f"\nmode change seen by every worker of 2 instances x 2 workers after at most: "
        f"{', '.join(f'{lag:.2f}' for lag in lags)} s"
    )
