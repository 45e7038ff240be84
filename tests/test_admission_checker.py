"""The checker steers admission: AIMD on each round, paused while visitors get the page, low after an outage."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from helpers import FixedClock

from fallback.checking.checker import Checker
from fallback.checking.probe import ProbeResult
from fallback.core.settings import Settings
from fallback.storage import open_storage

BACKENDS = ["sqlite", "postgres"]
MAIN = "http://127.0.0.1:9/"
FAST, SLOW, FAILED = 0.1, 1.5, None


class LatencyRunner:
    """Each round answers with the next latency of the script (None: a failed probe); fast once it runs out."""

    def __init__(self, script):
        self.script = list(script)

    def run(self, urls, expect_text_for=None):
        latency = self.script.pop(0) if self.script else FAST
        if latency is None:
            return [ProbeResult(url, False, 0.05, 503, "HTTP 503") for url in urls]
        return [ProbeResult(url, True, latency, 200, "ok") for url in urls]


@pytest.fixture
def clock():
    return FixedClock()


@pytest.fixture
def settings(database):
    # The checker tests' settings, with a ceiling of 20 a second and the default latency limit (2 s).
    return dataclasses.replace(
        Settings(main_url=MAIN, check_urls=(MAIN,), database=database, check_interval=5.0, check_timeout=3.0),
        admit_rate=20.0,
    )


def steered(settings, clock, script):
    storage = open_storage(settings.database, clock)
    if settings.admit_rate is not None:
        storage.admission.configure(settings.admit_rate, clock().timestamp(), paused=False)
    return Checker(settings, storage, LatencyRunner(script), owner="a"), storage


def rates(checker, storage, clock, rounds):
    seen = []
    for _ in range(rounds):
        checker.step()
        clock.now += timedelta(seconds=1)
        seen.append(round(storage.admission.read().rate, 3))
    return seen


def test_slow_or_failed_rounds_halve_the_rate_and_fast_ones_climb_back_to_the_ceiling(settings, clock):
    checker, storage = steered(settings, clock, [SLOW, SLOW, FAILED, FAST, FAST, FAST])
    assert rates(checker, storage, clock, 6) == [10.0, 5.0, 2.5, 4.5, 6.5, 8.5]
    assert rates(checker, storage, clock, 8)[-1] == 20.0


def test_after_an_outage_the_rate_is_paused_then_starts_low_and_climbs(settings, clock):
    checker, storage = steered(settings, clock, [FAILED] * 3 + [FAST] * 4)
    seen = rates(checker, storage, clock, 7)
    assert storage.flag.read().state == "up"
    # Halved twice, paused from the flip down to the flip up, then a tenth of the ceiling, climbing.
    assert seen == [10.0, 5.0, 0.0, 0.0, 2.0, 4.0, 6.0]


def test_without_adapting_the_rate_is_the_ceiling_while_up_and_paused_while_down(settings, clock):
    checker, storage = steered(
        dataclasses.replace(settings, admit_adapt=False), clock, [SLOW, FAILED, FAILED, FAILED, FAST, FAST]
    )
    assert rates(checker, storage, clock, 6) == [20.0, 20.0, 20.0, 0.0, 0.0, 20.0]


def test_while_visitors_wait_it_probes_every_second_and_says_so_once(settings, clock):
    checker, storage = steered(settings, clock, [])
    checker.step()  # unknown, then up: the second round flips
    assert checker.step() == 5.0
    storage.admission.reserve(200, clock().timestamp())
    assert checker.step() == 1.0
    assert checker.step() == 1.0
    clock.now += timedelta(minutes=1)
    assert checker.step() == 5.0
    recorded = [event.type for event in reversed(storage.events.recent()) if event.type.startswith("admission.")]
    assert recorded == ["admission.started", "admission.stopped"]
    assert [sample[2] for sample in storage.admission.samples(clock() - timedelta(hours=1))][:3] == [0, 0, 200]


def test_without_a_rate_the_checker_leaves_admission_alone(settings, clock):
    checker, storage = steered(dataclasses.replace(settings, admit_rate=None), clock, [SLOW])
    storage.admission.set_rate(0.0, clock().timestamp())
    checker.step()
    assert storage.admission.read().rate == 0.0
    assert storage.admission.samples(clock() - timedelta(hours=1)) == []
