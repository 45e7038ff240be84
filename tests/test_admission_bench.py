"""A tiny run of the admission bench (bench/admission.py), so that it cannot rot: about a minute.

A few dozen visitors, a main site that holds 4 requests at once, short waits. The bounds are loose (the bench
holds the targets, see docs/admission.md): the spike without admission overflows the main site, every visitor is
accounted for, and the table has a row for each run.
"""

from __future__ import annotations

import pytest
from helpers import bench_module

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench():
    with bench_module("admission") as module:
        yield module


@pytest.fixture(scope="module")
def tiny(bench):
    # 4 requests at once of 0.05 s, 2 clicks a visitor: the main site takes 40 visitors a second, the rate is 20.
    return bench.Config(
        capacity=4,
        work=0.05,
        clicks=2,
        spike=40,
        spike_seconds=0.5,
        recovery=30,
        arrive_seconds=1.0,
        down_seconds=4.0,
        give_up=20.0,
        adapt=False,
        count_probes=False,  # probes answered at once: the checker never shows the page, so each run is short
    )


@pytest.fixture(scope="module")
def results(bench, tiny):
    return bench.run_all(tiny, ["spike", "recovery"])


def test_each_scenario_runs_with_admission_off_and_on(results):
    assert [(r["scenario"], r["admission"]) for r in results] == [
        ("spike", False),
        ("spike", True),
        ("recovery", False),
        ("recovery", True),
    ]


def test_every_visitor_is_accounted_for(results, tiny):
    for result in results:
        expected = tiny.spike if result["scenario"] == "spike" else tiny.recovery
        assert result["visitors"] == expected, result["lost_by_reason"]
        assert result["sent_on"] + result["still_waiting"] + result["lost"] >= expected
        assert result["server_log_problems"] == [], result["server_log_problems"]


def test_the_spike_without_admission_overflows_the_main_site(results, tiny):
    spike_off = results[0]
    assert spike_off["peak_held"] > tiny.capacity, spike_off
    assert spike_off["main_requests"] > 0 and spike_off["timeline"], spike_off


def test_with_admission_visitors_wait_and_are_told_how_long(results):
    spike_on = results[1]
    assert spike_on["waited"] > 0, spike_on
    assert spike_on["wait_gap"]["outside"] <= spike_on["waited"], spike_on


def test_the_table_has_a_row_for_each_run(bench, results, tiny):
    lines = bench.table(results, tiny).splitlines()
    assert len(lines) == 2 + len(results)
    assert lines[2].startswith("| spike | off | 40 |"), lines[2]
