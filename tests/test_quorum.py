"""The quorum (FALLBACK_QUORUM above 1): the pure count of fresh verdicts, and the checker's rounds as vantage points,
with fake probes and a fixed clock, on both backends."""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta

from helpers import FixedClock
from webhook_receiver import SECRET

from fallback.checking.checker import VANTAGE_HISTORY, Checker
from fallback.checking.probe import ProbeResult
from fallback.checking.quorum import count_votes, fresh_seconds, quorum_status
from fallback.checking.status import status_document
from fallback.core.settings import Settings
from fallback.outbound.messages import dispatch, notification_text
from fallback.serving.background import InstanceLock
from fallback.storage import Verdict, open_storage

BACKENDS = ["sqlite", "postgres"]
MAIN = "http://127.0.0.1:9/"
CONTROL = "http://127.0.0.1:10/"
NOW = FixedClock().now
HOOKS = "http://127.0.0.1:9/hooks"
WINDOW = fresh_seconds(interval=5, timeout=3)  # 18 s


def verdict(name, state, age=1.0, kind="instance", reason=None):
    """A verdict that reached the database `age` seconds before NOW."""
    at = NOW - timedelta(seconds=age)
    ok = state == "up"
    return Verdict(name, kind, state, ok, reason or ("answered" if ok else "refused"), at, at, at)


def votes(verdicts, quorum=2, current="up"):
    return count_votes(verdicts, quorum, NOW, WINDOW, current)


# The pure count.


def test_a_verdict_is_fresh_for_three_intervals_plus_a_timeout():
    assert WINDOW == 18
    assert votes([verdict("a", "down", 17.9), verdict("b", "down", 17.9)]).flip_to == "down"
    assert votes([verdict("a", "down", 17.9), verdict("b", "down", 18.0)]).flip_to is None


def test_it_flips_down_only_when_n_fresh_vantage_points_say_down():
    decision = votes([verdict("a", "down", reason="http://x/: refused"), verdict("b", "down")])
    assert decision.flip_to == "down" and not decision.missing
    assert decision.agreed == ("a", "b")
    assert decision.reason == "quorum of 2: 2 of 2 fresh vantage points say down (a, b); a: http://x/: refused"


def test_it_flips_back_up_only_when_n_fresh_vantage_points_say_up():
    assert votes([verdict("a", "up"), verdict("b", "down")], current="down").flip_to is None
    decision = votes([verdict("a", "up"), verdict("b", "up"), verdict("c", "down")], current="down")
    assert decision.flip_to == "up" and decision.agreed == ("a", "b")


def test_one_down_of_two_is_a_missing_quorum_that_names_who_says_what():
    decision = votes([verdict("web-1:8000", "down"), verdict("web-2:8001", "up")])
    assert decision.flip_to is None and decision.missing and decision.agreed == ()
    assert decision.reason == (
        "quorum missing: 1 of 2 fresh vantage points say down (web-1:8000), 1 up (web-2:8001); 2 needed"
    )


def test_stale_verdicts_do_not_count_and_too_few_fresh_ones_are_a_missing_quorum():
    decision = votes([verdict("a", "down"), verdict("b", "down", age=60)])
    assert decision.flip_to is None and decision.missing
    assert decision.reason == "quorum missing: 1 fresh vantage point (a), 2 needed"
    assert votes([], quorum=3).reason == "quorum missing: 0 fresh vantage points, 3 needed"


def test_a_vantage_point_that_does_not_know_votes_neither_way():
    decision = votes([verdict("a", "down"), verdict("b", "unknown"), verdict("c", "up")])
    assert decision.flip_to is None and decision.missing
    assert "1 unknown" in decision.reason


def test_a_quorum_that_agrees_with_the_state_is_met_and_flips_nothing():
    decision = votes([verdict("a", "down"), verdict("b", "down")], current="down")
    assert decision.flip_to is None and not decision.missing
    assert decision.reason == "quorum of 2: 2 of 2 fresh vantage points say down (a, b)"


def test_a_new_database_gets_its_first_state_from_a_quorum():
    assert votes([verdict("a", "up"), verdict("b", "up")], current="unknown").flip_to == "up"


def test_a_split_where_both_states_reach_the_quorum_flips_nothing():
    decision = votes([verdict(name, "down") for name in "ab"] + [verdict(name, "up") for name in "cd"])
    assert decision.flip_to is None and decision.missing and "split" in decision.reason


def test_the_status_view_shows_every_vantage_point_its_age_and_an_unreachable_quorum():
    status = quorum_status(
        [verdict("a", "down", 2.5), verdict("b probe", "up", 40, kind="agent")], 3, NOW, WINDOW, "up"
    )
    assert status["required"] == 3 and not status["met"] and status["unreachable"]
    assert status["summary"] == "quorum missing: 1 fresh vantage point (a), 3 needed"
    assert [(p["name"], p["kind"], p["state"], p["age"], p["fresh"]) for p in status["vantage_points"]] == [
        ("a", "instance", "down", 2.5, True),
        ("b probe", "agent", "up", 40.0, False),
    ]


# The checker's rounds as vantage points.


def ok(url):
    return ProbeResult(url, True, 0.05, 200, "ok")


def bad(url):
    return ProbeResult(url, False, 0.05, None, "connection refused")


class Network:
    """One vantage point's view: the main site answers or not; the control URL answers unless `cut`."""

    def __init__(self, site_up=True, cut=False):
        self.site_up, self.cut, self.rounds = site_up, cut, 0

    def run(self, urls, expect_text_for=None):
        self.rounds += 1
        return [ok(url) if self.answers(url) else bad(url) for url in urls]

    def answers(self, url):
        return not self.cut and (self.site_up or url != MAIN)


def quorum_settings(database, quorum=2, control=None):
    return Settings(
        main_url=MAIN,
        check_urls=(MAIN,),
        control_url=control,
        database=database,
        check_interval=5.0,
        check_timeout=3.0,
        fall=3,
        rise=2,
        quorum=quorum,
    )


def instance(settings, clock, name, network, prober=None):
    """A vantage point's checker on its own connections to the shared database."""
    storage = open_storage(settings.database, clock)
    storage.outbox.synchronise([HOOKS])
    return Checker(settings, storage, network, owner=name, vantage=name, prober=prober)


def webhooks_claimed(storage):
    """The webhooks the events recorded so far make for HOOKS, claimed as the sender would."""
    settings = Settings.from_env({"FALLBACK_WEBHOOK_URLS": HOOKS, "FALLBACK_WEBHOOK_SECRET": SECRET})
    dispatch(storage, settings)
    return storage.outbox.claim("webhook", 60)[0]


def rounds(checkers, count, clock):
    for _ in range(count):
        for checker in checkers:
            checker.step()
        clock.now += timedelta(seconds=1)


def test_with_a_quorum_of_one_no_verdict_is_recorded(database, clock):
    alone = instance(quorum_settings(database, quorum=1), clock, "a", Network(site_up=False))
    rounds([alone], 3, clock)
    assert alone.storage.flag.read().state == "down"
    assert alone.storage.verdicts.latest() == []


def test_two_instances_that_both_see_the_site_down_flip_it_once_naming_both(database, clock):
    settings = quorum_settings(database)
    first, second = (instance(settings, clock, name, Network(site_up=False)) for name in ("web-1:8000", "web-2:8001"))
    rounds([first, second], 3, clock)
    # The holder (first) counted before the other's third failure: the quorum forms at its next round.
    assert first.storage.flag.read().state == "unknown"
    rounds([first, second], 1, clock)
    flag = first.storage.flag.read()
    assert flag.state == "down"
    assert flag.state_reason.startswith("quorum of 2: 2 of 2 fresh vantage points say down (web-1:8000, web-2:8001)")
    assert (first.runner.rounds, second.runner.rounds) == (4, 4)  # both probe; only the holder decides
    [event] = first.storage.events.recent()
    assert notification_text(event)["title"] == "main site down"
    assert "web-1:8000, web-2:8001" in notification_text(event)["body"]
    [opened] = [json.loads(d.payload) for d in webhooks_claimed(first.storage)]
    assert opened["type"] == "incident.opened"
    assert opened["data"]["vantage_points"] == ["web-1:8000", "web-2:8001"]


def test_the_site_comes_back_up_once_n_vantage_points_see_it_again_and_the_incident_names_them(database, clock):
    settings = quorum_settings(database)
    first, second = (instance(settings, clock, name, Network(site_up=False)) for name in "ab")
    rounds([first, second], 4, clock)
    webhooks_claimed(first.storage)  # the incident.opened delivery, out of the way
    first.runner.site_up = True
    rounds([first, second], 2, clock)
    assert first.storage.flag.read().state == "down"  # a is up again, b not yet when a counted
    second.runner.site_up = True
    rounds([first, second], 3, clock)
    assert first.storage.flag.read().state == "up"
    [incident] = first.storage.flag.incidents()
    assert incident.end_reason.startswith("quorum of 2: 2 of 2 fresh vantage points say up (a, b)")
    [closed] = [json.loads(d.payload) for d in webhooks_claimed(first.storage)]
    assert closed["type"] == "incident.closed" and closed["data"]["vantage_points"] == ["a", "b"]


def test_one_instance_whose_path_to_the_site_is_broken_flips_nothing(database, clock):
    settings = quorum_settings(database)
    broken, fine = instance(settings, clock, "a", Network()), instance(settings, clock, "b", Network())
    rounds([broken, fine], 3, clock)
    assert broken.storage.flag.read().state == "up"
    broken.runner.site_up = False
    rounds([broken, fine], 10, clock)
    assert broken.storage.flag.read().state == "up"
    status = status_document(broken.storage, settings, clock.now)
    assert not status["quorum"]["met"]
    assert status["quorum"]["summary"] == "quorum missing: 1 of 2 fresh vantage points say down (a), 1 up (b); 2 needed"
    assert {p["name"]: p["state"] for p in status["quorum"]["vantage_points"]} == {"a": "down", "b": "up"}


def test_the_holder_does_not_count_a_vantage_point_that_went_silent(database, clock):
    settings = quorum_settings(database)
    first, second = instance(settings, clock, "a", Network(site_up=False)), instance(settings, clock, "b", Network())
    rounds([first, second], 3, clock)
    second.runner.site_up = False
    rounds([second], 3, clock)  # b's own state is down by now, and it is the last b says
    clock.now += timedelta(seconds=WINDOW)
    rounds([first], 1, clock)
    assert first.storage.flag.read().state != "down"
    assert (
        "quorum missing: 1 fresh vantage point (a)"
        in status_document(first.storage, settings, clock.now)["quorum"]["summary"]
    )


def test_a_vantage_point_silent_for_a_day_is_dropped_by_the_holder(database, clock):
    settings = quorum_settings(database)
    holder, retired = instance(settings, clock, "a", Network()), instance(settings, clock, "b", Network())
    rounds([holder, retired], 1, clock)
    clock.now += VANTAGE_HISTORY
    holder.rounds = 100  # the holder prunes every 100 rounds: this one is its next pruning round
    rounds([holder], 1, clock)
    assert [verdict.name for verdict in holder.storage.verdicts.latest()] == ["a"]


def test_a_vantage_point_that_doubts_its_own_network_says_unknown(database, clock):
    settings = quorum_settings(database, control=CONTROL)
    cut = instance(settings, clock, "a", Network(cut=True))
    rounds([cut], 5, clock)
    [mine] = cut.storage.verdicts.latest()
    assert mine.state == "unknown" and "network in doubt" in mine.reason


def test_a_worker_that_is_not_its_instance_s_prober_neither_probes_nor_votes(database, clock):
    idle = instance(quorum_settings(database), clock, "a", Network(), prober=lambda: False)
    rounds([idle], 3, clock)
    assert idle.runner.rounds == 0 and not idle.holding
    assert idle.storage.verdicts.latest() == []


def test_a_forced_mode_still_wins_over_a_quorum(database, clock):
    settings = quorum_settings(database)
    first, second = (instance(settings, clock, name, Network(site_up=False)) for name in "ab")
    first.storage.flag.set_mode("up", reason="we know better")
    rounds([first, second], 4, clock)
    flag = first.storage.flag.read()
    assert flag.state == "down" and flag.served_state(clock.now) == "up"


def test_a_quorum_larger_than_the_vantage_points_that_ever_reported_is_warned_of_once(database, clock, caplog):
    lonely = instance(quorum_settings(database, quorum=3), clock, "a", Network())
    with caplog.at_level(logging.WARNING, "fallback.checker"):
        rounds([lonely], int(WINDOW) + 5, clock)
    warnings = [r.getMessage() for r in caplog.records if "FALLBACK_QUORUM" in r.getMessage()]
    assert warnings == ["FALLBACK_QUORUM is 3 but only 1 vantage point ever reported: nothing can flip until more do"]
    assert status_document(lonely.storage, lonely.settings, clock.now)["quorum"]["unreachable"]


def test_only_one_worker_of_an_instance_holds_its_prober_lock(tmp_path):
    first, second = InstanceLock(str(tmp_path)), InstanceLock(str(tmp_path))
    assert first.held() and not second.held()
    assert first.held()  # kept across rounds
    assert first.fd is not None
    os.close(first.fd)  # as when its worker dies: the kernel lets go of the lock
    assert second.held()
