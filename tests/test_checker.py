"""The checker: the pure decision, the loop with a fake probe and a fixed clock, the lease, the guarded flip."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from datetime import timedelta

import pytest

from fallback.checking.checker import Checker
from fallback.checking.decision import QUICK_RECHECK_SECONDS, Tally, decide
from fallback.checking.probe import ProbeResult
from fallback.checking.selfprobe import REASON as SELF_PROBE_REASON
from fallback.checking.status import heartbeat_is_fresh
from fallback.core.settings import Settings
from fallback.outbound.messages import notification_text
from fallback.storage import open_storage

BACKENDS = ["sqlite", "postgres"]
MAIN = "http://127.0.0.1:9/"
CONTROL = "http://127.0.0.1:10/"


def ok(url=MAIN):
    return ProbeResult(url, True, 0.05, 200, "ok")


def bad(url=MAIN, reason="HTTP 503"):
    return ProbeResult(url, False, 0.05, 503, reason)


def run(results, state="up", fall=3, rise=2, control=None):
    """Feed rounds to `decide`; returns the decisions."""
    tally, decisions = Tally(state), []
    for result in results:
        decision = decide(tally, [result], control, fall, rise, interval=5.0)
        tally = decision.tally
        decisions.append(decision)
    return decisions


def test_it_flips_down_after_three_failures():
    decisions = run([bad(), bad(), bad()])
    assert [d.flip_to for d in decisions] == [None, None, "down"]
    assert decisions[-1].tally.state == "down"
    assert "HTTP 503" in decisions[-1].reason


def test_it_rechecks_quickly_after_a_first_failure():
    first, second, third = run([bad(), bad(), bad()])
    assert first.next_check_in == second.next_check_in == QUICK_RECHECK_SECONDS
    assert third.next_check_in == 5.0


def test_it_flips_back_up_after_two_successes_and_not_one():
    decisions = run([ok(), ok()], state="down")
    assert [d.flip_to for d in decisions] == [None, "up"]
    assert decisions[0].next_check_in == QUICK_RECHECK_SECONDS


def test_a_site_failing_one_probe_in_three_never_flips():
    pattern = list(itertools.islice(itertools.cycle([bad(), ok(), ok()]), 300))
    assert all(d.flip_to is None for d in run(pattern, fall=2, rise=2))


def test_a_site_failing_two_probes_in_three_never_flips_at_fall_three():
    pattern = list(itertools.islice(itertools.cycle([bad(), bad(), ok()]), 300))
    assert all(d.flip_to is None for d in run(pattern))


@pytest.mark.parametrize("fall", [1, 2, 3, 5])
@pytest.mark.parametrize("rise", [1, 2, 4])
def test_the_thresholds_are_exact_for_every_setting(fall, rise):
    down = run([bad()] * fall, fall=fall, rise=rise)
    assert [d.flip_to for d in down] == [None] * (fall - 1) + ["down"]
    up = run([ok()] * rise, state="down", fall=fall, rise=rise)
    assert [d.flip_to for d in up] == [None] * (rise - 1) + ["up"]


def test_a_new_database_gets_a_verdict_either_way():
    assert run([ok(), ok()], state="unknown")[-1].flip_to == "up"
    assert run([bad()] * 3, state="unknown")[-1].flip_to == "down"


def test_a_failing_control_url_means_our_network_is_in_doubt_and_nothing_flips():
    decisions = run([bad()] * 10, control=bad(CONTROL, "connection failed"))
    assert all(d.flip_to is None and d.network_doubt for d in decisions)
    assert decisions[-1].tally == Tally("up")
    assert "network in doubt" in decisions[-1].reason


def test_a_vantage_point_votes_its_state_and_unknown_while_its_network_is_in_doubt():
    first, second, _ = run([ok(), bad(), bad()], state="unknown")
    assert (first.passed, first.vote, second.passed, second.vote) == (True, "unknown", False, "unknown")
    *_, down = run([bad()] * 3, state="unknown")
    assert (down.passed, down.vote) == (False, "down")
    [doubt] = run([bad()], state="down", control=bad(CONTROL, "connection failed"))
    assert doubt.tally.state == "down" and (doubt.passed, doubt.vote) == (False, "unknown")


def test_a_failing_main_site_with_a_healthy_control_url_flips():
    assert run([bad()] * 3, control=ok(CONTROL))[-1].flip_to == "down"


def test_one_failing_check_url_among_several_is_a_failure():
    tally = Tally("up")
    for _ in range(3):
        decision = decide(tally, [ok("http://127.0.0.1:9/a"), bad("http://127.0.0.1:9/b")], None, 3, 2, 5.0)
        tally = decision.tally
    assert decision.flip_to == "down" and "http://127.0.0.1:9/b" in decision.reason


def test_the_heartbeat_is_fresh_for_three_intervals_plus_a_timeout():
    assert heartbeat_is_fresh(17.9, interval=5, timeout=3)
    assert not heartbeat_is_fresh(18.0, interval=5, timeout=3)
    assert not heartbeat_is_fresh(None, interval=5, timeout=3)


class FakeRunner:
    """Answers each round from a script; counts rounds."""

    def __init__(self, script):
        self.script = list(script)
        self.rounds = 0

    def run(self, urls, expect_text_for=None):
        self.rounds += 1
        outcome = self.script.pop(0) if self.script else True
        if isinstance(outcome, Exception):
            raise outcome
        return [ok(url) if outcome else bad(url) for url in urls]


@pytest.fixture
def check_settings(database):
    return Settings(
        main_url=MAIN, check_urls=(MAIN,), database=database, check_interval=5.0, check_timeout=3.0, fall=3, rise=2
    )


def checker(check_settings, clock, script, owner="a"):
    return Checker(check_settings, open_storage(check_settings.database, clock), FakeRunner(script), owner=owner)


def announced(storage) -> list[str]:
    """The titles of the notifications the events recorded so far make, newest first."""
    return [text["title"] for event in storage.events.recent() if (text := notification_text(event))]


def test_the_loop_flips_once_opens_an_incident_and_queues_one_notification(check_settings, clock):
    c = checker(check_settings, clock, [False] * 5)
    for _ in range(5):
        c.step()
    flag = c.storage.flag.read()
    assert flag.state == "down" and "HTTP 503" in flag.state_reason
    [incident] = c.storage.flag.incidents()
    assert incident.ended_at is None
    assert announced(c.storage) == ["main site down"]


def test_recovery_closes_the_incident_with_its_duration_and_leads(check_settings, clock):
    from fallback.storage import NewLead

    c = checker(check_settings, clock, [False] * 3 + [True] * 2)
    for _ in range(3):
        c.step()
    clock.now += timedelta(minutes=4)
    c.storage.leads.save(NewLead("during@example.org"))
    clock.now += timedelta(seconds=1)
    c.step()
    c.step()
    [incident] = c.storage.flag.incidents()
    assert incident.ended_at is not None
    assert incident.duration_seconds == 241
    assert incident.leads == 1
    assert announced(c.storage) == ["main site up", "main site down"]


def test_each_round_records_its_probes_and_a_heartbeat(check_settings, clock):
    c = checker(check_settings, clock, [True])
    c.step()
    [probe] = c.storage.checker.recent_probes()
    assert (probe.url, probe.ok, probe.status) == (MAIN, 1, 200)
    assert c.storage.checker.read().heartbeat_at == clock.now


def test_two_checkers_on_one_database_probe_as_often_as_one(check_settings, clock):
    first, second = checker(check_settings, clock, [], "a"), checker(check_settings, clock, [], "b")
    for _ in range(10):
        first.step()
        second.step()
    assert (first.runner.rounds, second.runner.rounds) == (10, 0)


@pytest.mark.sqlite_only("on PostgreSQL a lock held by the checker's session decides, not a lease")
def test_another_checker_takes_over_when_the_holder_goes_silent(check_settings, clock):
    first, second = checker(check_settings, clock, [], "a"), checker(check_settings, clock, [], "b")
    first.step()
    second.step()
    clock.now += timedelta(seconds=3 * check_settings.check_interval + check_settings.check_timeout + 1)
    second.step()
    assert second.runner.rounds == 1 and second.holding
    first.step()
    assert first.runner.rounds == 1 and not first.holding


@pytest.mark.postgres_only("advisory locks")
def test_on_postgres_the_checker_moves_as_soon_as_the_holders_session_dies(check_settings, clock):
    first, second = checker(check_settings, clock, [], "a"), checker(check_settings, clock, [], "b")
    first.step()
    second.step()
    assert (first.holding, second.holding) == (True, False)
    terminate_lock_holders(check_settings.database)  # what the server does when the holder's process dies
    second.step()  # no lease to wait for
    assert second.holding and second.runner.rounds == 1
    assert second.storage.checker.read().owner == "b"
    first.step()
    assert not first.holding and first.runner.rounds == 1


@pytest.mark.postgres_only("advisory locks")
def test_on_postgres_a_hung_holder_loses_the_lock_once_it_has_renewed_nothing_for_a_lease(check_settings, clock):
    first, second = checker(check_settings, clock, [], "a"), checker(check_settings, clock, [], "b")
    first.step()
    second.step()  # second starts watching the checker row
    clock.now += timedelta(seconds=first.lease_seconds - 1)  # silent, but not for a whole lease yet
    second.step()
    assert (first.holding, second.holding) == (True, False)
    clock.now += timedelta(seconds=2)  # first's checker hangs on: its session lives, its row stays the same
    second.step()  # ends first's lock session
    deadline = time.monotonic() + 5
    while not second.holding and time.monotonic() < deadline:  # the ended session goes within moments
        second.step()
    assert second.holding and second.storage.checker.read().owner == "b"
    first.step()  # it wakes up: the lock is gone, and it does not take it back
    assert not first.holding and first.runner.rounds == 1
    second.step()
    assert second.holding


@pytest.mark.postgres_only("advisory locks")
def test_on_postgres_a_holder_that_renews_is_never_ended_however_far_the_clocks_drift(check_settings, clock):
    first, second = checker(check_settings, clock, [], "a"), checker(check_settings, clock, [], "b")
    for _ in range(10):
        first.step()
        clock.now += timedelta(hours=1)  # second's view of time runs far ahead of the lease first writes
        second.step()
    assert (first.holding, second.holding) == (True, False) and first.runner.rounds == 10


@pytest.mark.postgres_only("advisory locks")
def test_on_postgres_a_hung_holder_is_looked_for_in_this_database_only(check_settings, clock, pg_cluster):
    import psycopg

    from fallback.storage.postgres_checker import CHECKER_LOCK

    other = pg_cluster.create_database()
    try:
        with psycopg.connect(other, autocommit=True) as elsewhere:  # another installation on the same server
            assert elsewhere.execute("SELECT pg_try_advisory_lock(%s)", (CHECKER_LOCK,)).fetchone()[0]
            first, second = checker(check_settings, clock, [], "a"), checker(check_settings, clock, [], "b")
            first.step()
            second.step()
            clock.now += timedelta(seconds=first.lease_seconds + 1)
            second.step()  # ends first's session, not the other database's
            assert elsewhere.execute("SELECT 1").fetchone() == (1,)
    finally:
        pg_cluster.drop_database(other)


def test_a_round_that_outlasts_the_lease_flips_nothing_and_records_nothing(check_settings, clock):
    c = checker(check_settings, clock, [])
    c.step()
    c.step()  # two good rounds: up
    stalled = FakeRunner([False] * 5)
    run = stalled.run

    def run_stalling(urls, expect_text_for=None):
        clock.now += timedelta(seconds=c.lease_seconds + 1)  # hung mid-round, say on a wedged socket
        return run(urls, expect_text_for)

    stalled.run = run_stalling
    c.runner = stalled
    for _ in range(5):
        c.step()
    assert c.storage.flag.read().state == "up" and len(c.storage.checker.recent_probes()) == 2


def terminate_lock_holders(database: str) -> int:
    """End, from the server's side, every session holding the checker's advisory lock; how many."""
    import psycopg

    from fallback.storage.postgres_checker import CHECKER_LOCK

    holders = (
        "FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    key = (CHECKER_LOCK >> 32, CHECKER_LOCK & 0xFFFFFFFF)
    with psycopg.connect(database, autocommit=True) as conn:
        ended = len(conn.execute("SELECT pg_terminate_backend(pid) " + holders, key).fetchall())
        deadline = time.monotonic() + 5
        # pg_terminate_backend only signals: wait (bounded) until the session is gone with its lock.
        while conn.execute("SELECT COUNT(*) " + holders, key).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.02)
    return ended


def test_a_flip_is_written_once_however_many_processes_try(check_settings, clock):
    storage = open_storage(check_settings.database, clock)
    storage.flag.flip("unknown", "up", "first round")
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                open_storage(check_settings.database, clock).flag.flip("up", "down", "HTTP 503")
            )
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == [False] * 7 + [True]
    assert len(storage.flag.incidents()) == 1


def test_an_expired_forced_mode_returns_to_auto_once_and_is_recorded(check_settings, clock):
    c = checker(check_settings, clock, [])
    c.storage.flag.set_mode("down", until=clock.now + timedelta(minutes=30), reason="TV", by="cli")
    c.step()
    assert c.storage.flag.read().mode == "down"
    clock.now += timedelta(minutes=30)
    c.step()
    c.step()
    assert c.storage.flag.read().mode == "auto"
    assert [change.by for change in c.storage.flag.mode_changes()] == ["expiry", "cli"]


def test_a_crashing_round_is_logged_and_the_loop_goes_on(check_settings, clock, caplog):
    import dataclasses

    fast = dataclasses.replace(check_settings, check_interval=0.001)
    c = checker(fast, clock, [RuntimeError("boom"), True, True])
    stop = threading.Event()
    original = c.step

    def step():
        if c.runner.rounds >= 3:
            stop.set()
        return original()

    c.step = step
    c.run(stop)
    assert c.runner.rounds >= 3
    assert "checker round failed" in caplog.text
    assert c.storage.checker.read().heartbeat_at is not None
    assert c.storage.checker.read().lease_until is None  # released on the way out


def test_a_database_outage_during_a_round_is_one_log_line_and_the_loop_goes_on(check_settings, clock, caplog):
    import dataclasses

    from fallback.storage import StorageError

    c = checker(dataclasses.replace(check_settings, check_interval=0.001), clock, [True] * 5)
    stop = threading.Event()
    original, calls = c.storage.checker.claim, []

    def claim(owner, lease_seconds):
        calls.append(owner)
        if len(calls) == 1:
            raise StorageError("the database is unreachable: connection refused")
        if len(calls) >= 3:
            stop.set()
        return original(owner, lease_seconds)

    c.storage.checker.claim = claim
    c.run(stop)
    assert c.runner.rounds >= 1
    assert "checker round failed; retrying: the database is unreachable" in caplog.text
    assert "Traceback" not in caplog.text


class SelfProbeRunner(FakeRunner):
    """Every round reaches fallback itself (True in the script: the main site answers instead)."""

    def run(self, urls, expect_text_for=None):
        self.rounds += 1
        reached_main = self.script.pop(0) if self.script else False
        return [ok(url) if reached_main else bad(url, SELF_PROBE_REASON) for url in urls]


def test_a_probe_reaching_fallback_itself_fails_and_is_warned_of_once_per_incident(check_settings, clock, caplog):
    from fallback.checking.status import status_document

    caplog.set_level(logging.INFO, "fallback.checker")
    c = Checker(check_settings, open_storage(check_settings.database, clock), SelfProbeRunner([False] * 5 + [True] * 2))
    for _ in range(5):
        c.step()
    assert c.storage.flag.read().state == "down"
    assert SELF_PROBE_REASON in c.storage.flag.incidents()[0].reason
    document = status_document(c.storage, check_settings, clock.now)
    assert document["self_probe"] and "origin hostname of its own" in document["checker"]["note"]
    warnings = [r for r in caplog.records if "reached fallback itself" in r.getMessage() and "origin" in r.message]
    assert [r.levelno for r in warnings] == [logging.WARNING, logging.WARNING]  # the flip's line and the advice
    assert len([r for r in warnings if "FALLBACK_CHECK_URLS" in r.message]) == 1
    c.step()
    c.step()
    assert not status_document(c.storage, check_settings, clock.now)["self_probe"]


def test_an_outage_is_logged_as_a_warning_and_the_recovery_as_information(check_settings, clock, caplog):
    caplog.set_level(logging.INFO, "fallback.checker")
    c = checker(check_settings, clock, [False] * 3 + [True] * 2)
    for _ in range(5):
        c.step()
    flips = [
        (r.levelno, r.getMessage().split(":")[0]) for r in caplog.records if r.getMessage().startswith("main site")
    ]
    assert flips == [(logging.WARNING, "main site down"), (logging.INFO, "main site up")]


def test_a_checker_given_up_while_probing_writes_nothing_more_and_another_takes_over_at_once(settings, clock):
    a = checker(settings, clock, [False] * 5, owner="a")
    b = checker(settings, clock, [True] * 5, owner="b")
    a.step()
    heartbeat = a.storage.checker.read().heartbeat_at
    a.runner.run = lambda urls, expect_text_for=None: (a.release(), [bad(url) for url in urls])[1]  # stopped mid-probe
    a.step()
    assert not a.holding and a.runner.rounds == 1
    assert a.storage.checker.read().heartbeat_at == heartbeat  # the round given up recorded nothing
    a.step()
    assert not a.holding  # it never takes the lease again
    b.step()  # the same instant: no lease to wait out
    assert b.holding and b.storage.checker.read().owner == "b"


def test_a_checker_without_the_lease_takes_it_soon_after_the_holder_gives_it_up_not_an_interval_later(settings):
    a = Checker(settings, open_storage(settings.database), FakeRunner([]), owner="a")
    b = Checker(settings, open_storage(settings.database), FakeRunner([]), owner="b")
    a.step()
    stop = threading.Event()
    waiting = threading.Thread(target=b.run, args=(stop,))
    waiting.start()
    try:
        time.sleep(0.2)  # b has found the lease held and waits for its next round (an interval: 5 s)
        assert a.holding and not b.holding
        a.release()
        released = time.monotonic()
        while not b.holding and time.monotonic() - released < settings.check_interval:
            time.sleep(0.01)
        took = time.monotonic() - released
    finally:
        stop.set()
        waiting.join(10)
    assert b.storage.checker.read().owner == "b"
    assert took < 2.0, f"took {took:.2f} s"  # the contract's hand-over bound; it looks every half second
