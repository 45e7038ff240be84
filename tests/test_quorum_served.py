"""Two `fallback serve` instances on one real PostgreSQL with FALLBACK_QUORUM=2, watching a stand-in main site on
127.0.0.1: they flip down together when the site refuses, and not when only one instance's check URL is broken.

The seconds from a refused site to the flip are printed, with and without a quorum (`pytest -s` shows them).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import admin_status
from procs import free_port
from served import Served, quorum_env

from fallback.core.clock import utcnow
from fallback.storage import Storage, open_storage

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

BACKENDS = ["postgres"]
# Interval 1 s, fall 2, rise 2, timeout 1 s: a verdict is then fresh for 3 * 1 + 1 = 4 s.
FRESH_SECONDS = 4.0


def wait_for(condition, seconds: float, what: str, poll: float = 0.05):
    """`condition()`'s first truthy result within `seconds`, or fail naming `what`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(poll)
    raise AssertionError(f"{what} did not happen within {seconds} s")


def state_is(storage: Storage, state: str):
    """The stored flag when its state is `state`, else None."""
    flag = storage.flag.read()
    return flag if flag.state == state else None


def verdicts(storage: Storage) -> dict[str, str]:
    """Each vantage point's last state, by name."""
    return {verdict.name: verdict.state for verdict in storage.verdicts.latest()}


@pytest.mark.parametrize("quorum", [1, 2])
def test_two_instances_flip_down_when_the_site_refuses_and_say_who_agreed(database, site, tmp_path: Path, quorum):
    env = quorum_env(site.url, quorum, database)
    storage = open_storage(database)
    with Served(env, tmp_path) as first, Served(env, tmp_path) as second:
        wait_for(lambda: state_is(storage, "up"), 15, "the first verdict (up)")
        if quorum > 1:
            # One prober per instance, not one per worker: two instances of two workers probe about twice a second.
            before, started = site.hits, time.monotonic()
            time.sleep(3)
            probes, window = site.hits - before, time.monotonic() - started
            print(f"\n{probes} probes in {window:.1f} s from 2 instances of 2 workers")
            # Two probers at most once a second each, one more each at the window's ends (its length as measured:
            # a busy machine may stretch it); a prober per worker would be twice that.
            assert 3 <= probes <= 2 * (window + 1), (probes, window)
        refused_at = utcnow()
        site.stop()
        flag = wait_for(lambda: state_is(storage, "down"), 10, "the flip to down")
        seconds = (flag.state_since - refused_at).total_seconds()
        print(f"\nquorum {quorum}, 2 instances, 1 s interval: refused site to the flip in {seconds:.2f} s")
        assert seconds < 2 * FRESH_SECONDS
        if quorum > 1:
            names = ", ".join(sorted([first.vantage, second.vantage]))
            assert flag.state_reason.startswith(f"quorum of 2: 2 of 2 fresh vantage points say down ({names})")
            assert admin_status(first.url)["quorum"]["met"]
        else:
            assert storage.verdicts.latest() == []  # a quorum of one behaves as before: nobody votes
    storage.close()


def test_one_instance_with_a_broken_check_url_flips_nothing(database, site, tmp_path: Path):
    env = quorum_env(site.url, 2, database)
    storage = open_storage(database)
    with Served(env, tmp_path) as healthy:
        broken = Served(env, tmp_path).start()
        wait_for(lambda: state_is(storage, "up"), 15, "the first verdict (up)")
        broken.stop()
        # The same instance back on its port, its path to the main site now broken: a dead loopback port.
        dead = f"http://127.0.0.1:{free_port()}/"
        with Served(quorum_env(dead, 2, database), tmp_path, port=broken.port) as broken:
            wait_for(lambda: verdicts(storage).get(broken.vantage) == "down", 10, "the broken instance's own down")
            watched_until = time.monotonic() + FRESH_SECONDS + 1
            while time.monotonic() < watched_until:
                assert storage.flag.read().state == "up"
                time.sleep(0.1)
            assert verdicts(storage) == {healthy.vantage: "up", broken.vantage: "down"}
            quorum = admin_status(healthy.url)["quorum"]
            assert not quorum["met"]
            assert quorum["summary"] == (
                f"quorum missing: 1 of 2 fresh vantage points say down ({broken.vantage}), "
                f"1 up ({healthy.vantage}); 2 needed"
            )
    storage.close()
