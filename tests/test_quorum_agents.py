"""Three vantage points at a 1 s interval with FALLBACK_QUORUM=2 (issue 16): one `fallback serve` instance on
SQLite and two real `fallback probe` agents, or two instances on one real PostgreSQL and one agent, all on
127.0.0.1, watching a stand-in main site on loopback. An agent whose network is broken probes a dead loopback port.

Interval 1 s, timeout 1 s, fall 2, rise 2 everywhere: a verdict is fresh for 3 * 1 + 1 = 4 s. The seconds from a
refused site to the flip (and from its return to the flip back) are printed: `pytest -s` shows them.
"""

from __future__ import annotations

import re
import signal
from contextlib import closing
from pathlib import Path

import pytest
from helpers import api_status, bench_module, holds, wait_for
from procs import free_port
from served import QUORUM_TOKEN, Agent, Served, quorum_agent, quorum_env
from standin import StandIn

from fallback.core.clock import utcnow
from fallback.storage import Storage, open_storage

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

BACKENDS = ["postgres"]  # only the two-instance test takes a `database`; the others run one instance on SQLite
FRESH_SECONDS = 4.0
# A flip should come within fall rounds of every vantage point plus one of the holder's counting rounds: about
# 2.5 s; 6 s leaves room for a loaded machine and still fails a flip that waits for verdicts to go stale.
FLIP_BOUND = 6.0
STARTUP = 20.0


@pytest.fixture
def agents(tmp_path: Path):
    """Start an agent with `agents(report_to, site_url, name)`; any still running is killed after the test."""
    started: list[Agent] = []

    def start(report_to: str, site_url: str, name: str) -> Agent:
        agent = quorum_agent(tmp_path, report_to, site_url, name)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop(signal.SIGKILL)


def verdicts(storage: Storage) -> dict[str, str]:
    """Each vantage point's last state, by name."""
    return {verdict.name: verdict.state for verdict in storage.verdicts.latest()}


def state_is(storage: Storage, state: str):
    """The stored flag when its state is `state`, else None."""
    flag = storage.flag.read()
    return flag if flag.state == state else None


def all_say(storage: Storage, names: set[str], state: str):
    """The flag once every vantage point in `names` says `state` and the flag says it too, else None."""
    return verdicts(storage) == dict.fromkeys(names, state) and state_is(storage, state)


def freshness(quorum: dict) -> dict[str, bool]:
    """Whether each vantage point's last verdict is fresh, by name, from the status document's `quorum`."""
    return {point["name"]: point["fresh"] for point in quorum["vantage_points"]}


def agreed(reason: str, state: str) -> set[str]:
    """The vantage points a flip's reason names as agreeing on `state`."""
    found = re.match(rf"quorum of 2: (\d+) of \d+ fresh vantage points say {state} \(([^)]*)\)", reason)
    assert found, reason
    names = set(found.group(2).split(", "))
    assert len(names) == int(found.group(1)) >= 2, reason
    return names


def flip_seconds(storage: Storage, state: str, since) -> float:
    """Wait (bounded) for the flip to `state`; the seconds from `since` to it, by the stored flip time."""
    flag = wait_for(lambda: state_is(storage, state), 2 * FLIP_BOUND, f"the flip to {state}")
    return (flag.state_since - since).total_seconds()


def outage(storage: Storage, site: StandIn, names: set[str]) -> tuple[tuple[float, str], tuple[float, str]]:
    """Once `names` all say up: the site refuses, then answers again; (seconds, reason) of the flip down and up."""
    wait_for(lambda: all_say(storage, names, "up"), STARTUP, "every vantage point saying up")
    flips = []
    for state, switch in (("down", site.stop), ("up", site.start)):
        since = utcnow()
        switch()
        flips.append((flip_seconds(storage, state, since), storage.flag.read().state_reason))
    return flips[0], flips[1]


def test_three_vantage_points_flip_down_when_the_site_refuses_and_up_when_it_answers(site, agents, tmp_path):
    with Served(quorum_env(site.url, 2), tmp_path, workers=1) as served:
        with closing(open_storage(str(tmp_path / "fallback.db"))) as db:
            agents(served.url, site.url, "east probe")
            agents(served.url, site.url, "west probe")
            names = {served.vantage, "east probe", "west probe"}
            (down, down_reason), (up, up_reason) = outage(db, site, names)
    print(f"\n1 instance + 2 agents, quorum 2, 1 s interval: down {down:.2f} s after the refusal, up {up:.2f} s")
    assert 0 < down < FLIP_BOUND and 0 < up < FLIP_BOUND
    assert agreed(down_reason, "down") <= names and "connection refused" in down_reason
    assert agreed(up_reason, "up") <= names


def test_one_vantage_point_with_a_broken_network_flips_nothing(site, agents, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/"
    with Served(quorum_env(site.url, 2), tmp_path, workers=1) as served:
        with closing(open_storage(str(tmp_path / "fallback.db"))) as db:
            agents(served.url, site.url, "east probe")
            agents(served.url, dead, "broken probe")
            expected = {served.vantage: "up", "east probe": "up", "broken probe": "down"}
            wait_for(lambda: verdicts(db) == expected and state_is(db, "up"), STARTUP, "two ups and the broken down")
            holds(lambda: state_is(db, "up") and verdicts(db) == expected, FRESH_SECONDS + 1, "the state up")
            quorum = api_status(served.url, QUORUM_TOKEN)["quorum"]
            # The broken vantage point's down is fresh and counted, but one down is not a quorum of two.
            assert quorum["met"] and quorum["summary"].startswith("quorum of 2: 2 of 3 fresh vantage points say up")
            assert freshness(quorum) == dict.fromkeys(expected, True)
            refused_at = utcnow()
            site.stop()  # now the site is down for the two healthy networks too
            down = flip_seconds(db, "down", refused_at)
    assert 0 < down < FLIP_BOUND


def test_a_lone_fresh_vantage_point_flips_nothing_until_an_agent_is_back_either_way(site, agents, tmp_path):
    with Served(quorum_env(site.url, 2), tmp_path, workers=1) as served:
        with closing(open_storage(str(tmp_path / "fallback.db"))) as db:
            instance = served.vantage
            first = [agents(served.url, site.url, "east probe"), agents(served.url, site.url, "west probe")]
            wait_for(lambda: all_say(db, {instance, "east probe", "west probe"}, "up"), STARTUP, "all three up")
            assert [agent.stop(signal.SIGTERM) for agent in first] == [0, 0]
            site.stop()
            wait_for(lambda: verdicts(db)[instance] == "down", 10, "the instance's own down")
            # Longer than a freshness window: the agents' last ups go stale, and the instance alone says down.
            holds(lambda: state_is(db, "up"), FRESH_SECONDS + 1, "the state up on one vantage point's down")
            quorum = api_status(served.url, QUORUM_TOKEN)["quorum"]
            assert not quorum["met"]
            assert quorum["summary"] == f"quorum missing: 1 fresh vantage point ({instance}), 2 needed"
            assert freshness(quorum) == {
                instance: True,
                "east probe": False,
                "west probe": False,
            }
            back_at = utcnow()
            east = agents(served.url, site.url, "east probe")
            down = flip_seconds(db, "down", back_at)
            assert agreed(db.flag.read().state_reason, "down") == {instance, "east probe"}

            # Recovery needs the quorum too: the site answers, but only the instance is there to see it.
            assert east.stop(signal.SIGTERM) == 0
            site.start()
            wait_for(lambda: verdicts(db)[instance] == "up", 10, "the instance's own up")
            holds(lambda: state_is(db, "down"), FRESH_SECONDS + 1, "the state down on one vantage point's up")
            assert not api_status(served.url, QUORUM_TOKEN)["quorum"]["met"]
            back_at = utcnow()
            agents(served.url, site.url, "west probe")
            up = flip_seconds(db, "up", back_at)
            assert agreed(db.flag.read().state_reason, "up") == {instance, "west probe"}
    print(f"\nan agent restarted: down {down:.2f} s after its start, up {up:.2f} s")
    assert 0 < down < FLIP_BOUND + 2 and 0 < up < FLIP_BOUND + 2  # an agent's own start-up (~1 s) included


def test_two_instances_on_postgresql_and_one_agent_flip_together(database, site, agents, tmp_path):
    env = quorum_env(site.url, 2, database)
    with (
        Served(env, tmp_path, workers=1) as first,
        Served(env, tmp_path, workers=1) as second,
        closing(open_storage(database)) as db,
    ):
        agents(first.url, site.url, "east probe")
        names = {first.vantage, second.vantage, "east probe"}
        (down, down_reason), (up, up_reason) = outage(db, site, names)
    print(f"\n2 instances on PostgreSQL + 1 agent, quorum 2: down {down:.2f} s after the refusal, up {up:.2f} s")
    assert 0 < down < FLIP_BOUND and 0 < up < FLIP_BOUND
    assert agreed(down_reason, "down") <= names and agreed(up_reason, "up") <= names


def test_the_benchs_table_gives_min_median_max_and_the_ratio_to_a_quorum_of_one():
    figures = {
        "single": {"label": "quorum 1", "down": [1.0, 0.5, 2.0], "up": [1.0, 1.0, 1.0]},
        "agents": {"label": "quorum 2", "down": [1.5, 3.0, 1.0], "up": [2.0, 2.5, 1.5]},
        "postgres": {"label": "on PostgreSQL", "skipped": "--no-postgres"},
    }
    with bench_module("quorum") as bench:
        table = bench.rows(figures)
    assert [row[0] for row in table] == [
        "quorum 1: refused site to the flip down",
        "quorum 2: refused site to the flip down",
        "on PostgreSQL: refused site to the flip down",
        "quorum 1: site back to the flip up",
        "quorum 2: site back to the flip up",
        "on PostgreSQL: site back to the flip up",
    ]
    assert table[1][1:4] == ("1.50 s", "1.50x", "min / median / max 1.00 / 1.50 / 3.00 s; rounds 1.50 / 3.00 / 1.00")
    assert table[2][1:4] == ("skipped", "", "--no-postgres")
    assert table[4][1:3] == ("2.00 s", "2.00x")
