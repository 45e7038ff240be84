"""FALLBACK_ADMIT_ADAPT end to end: a real `fallback serve` in front of a main site whose probes queue like
visitors' requests (tests/capacity_site.py with count_probes) lowers the rate in force while the site answers
slowly, and climbs back to the ceiling once it is fast again. Loose bounds: the halving and the climb themselves
are measured on a fixed clock in tests/test_admission_checker.py."""

from __future__ import annotations

import time

import pytest
from capacity_site import CapacitySite
from served import Served

from fallback.storage import open_storage

BACKENDS = ["sqlite", "postgres"]
pytestmark = pytest.mark.slow

CEILING = 20.0
FAST_WORK, SLOW_WORK = 0.01, 2.5  # seconds a request takes at the main site
BOUND_SECONDS = 90


def environment(database: str, site: CapacitySite) -> dict:
    return {
        "FALLBACK_MAIN_URL": site.url,
        "FALLBACK_DATABASE": database,
        "FALLBACK_SECRET_KEY": "admission-adapt-secret",
        "FALLBACK_ADMIT_RATE": f"{CEILING:g}/second",
        "FALLBACK_RATE_LIMIT": "0",
        "FALLBACK_CHECK_INTERVAL": "1",
        # A slow round is one over half of 4 s; a probe fails only past 4 s (or 6 s, its time-out), and it takes
        # 10 failed rounds in a row to show the page: the rate must fall while the site is still up.
        "FALLBACK_MAX_LATENCY": "4",
        "FALLBACK_CHECK_TIMEOUT": "6",
        "FALLBACK_FALL": "10",
    }


def rate_once(database: str, wanted, bound: float = BOUND_SECONDS) -> list[float]:
    """The rates in force seen, once a second, until one is `wanted` (or the bound runs out)."""
    storage = open_storage(database)
    seen: list[float] = []
    try:
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            seen.append(storage.admission.read().rate)
            if wanted(seen[-1]) and storage.flag.read().state == "up":
                break
            time.sleep(1)
    finally:
        storage.close()
    return seen


def test_the_rate_in_force_falls_while_the_main_site_is_slow_and_climbs_back_when_it_is_fast(
    database, tmp_path, backend
):
    with (
        CapacitySite(capacity=50, work=FAST_WORK, count_probes=True) as site,
        Served(environment(database, site), tmp_path, workers=2),
    ):
        assert rate_once(database, lambda rate: rate == CEILING)[-1] == CEILING
        site.work = SLOW_WORK
        slowed = rate_once(database, lambda rate: 0 < rate <= CEILING / 2)
        assert 0 < slowed[-1] <= CEILING / 2, slowed
        site.work = FAST_WORK
        back = rate_once(database, lambda rate: rate == CEILING)
        assert back[-1] == CEILING, back
