"""The admission gate's arithmetic on a fixed clock: the mark, a place's wait, the block size and the AIMD step."""

import pytest

from fallback.core.admission import (
    BURST_SECONDS,
    MAX_BLOCK,
    Gate,
    block_size,
    floor_rate,
    healthy_round,
    look_again_after,
    next_rate,
    projected_wait,
    retry_after,
    send_time,
    start_rate,
)

T0 = 1_800_000_000.0


def test_the_mark_advances_at_the_rate_while_places_are_reserved_beyond_it():
    gate = Gate(next_place=100, mark_place=10.0, mark_at=T0, rate=5.0)
    assert gate.served(T0) == 10.0
    assert gate.served(T0 + 4) == 30.0
    assert gate.admits(29, T0 + 4) and not gate.admits(30, T0 + 4)


def test_an_idle_gate_banks_no_more_than_a_quarter_of_a_second_of_the_rate():
    gate = Gate(next_place=100, mark_place=100.0, mark_at=T0, rate=20.0)
    assert gate.served(T0 + 3600) == 100 + 20 * BURST_SECONDS
    # A spike after an idle hour: only the burst goes on at once, the rest waits its turn.
    assert gate.admits(104, T0 + 3600) and not gate.admits(105, T0 + 3600)


def test_a_slow_rate_still_lets_one_visitor_through_at_once():
    assert Gate(next_place=7, mark_place=7.0, mark_at=T0, rate=0.1).served(T0 + 600) == 8.0


def test_a_places_wait_is_its_distance_to_the_mark_at_the_rate():
    gate = Gate(next_place=100, mark_place=10.0, mark_at=T0, rate=4.0)
    # Place 49's slot is [49, 50): it goes on once the mark has passed 50, 40 places on at 4 a second.
    assert gate.wait(49, T0, 4.0, adapt=False) == pytest.approx(10.0)
    assert gate.wait(49, T0 + 10, 4.0, adapt=False) == 0.0
    assert gate.wait(9, T0, 4.0, adapt=False) == 0.0
    assert gate.ahead(49, T0) == 39
    assert retry_after(gate.wait(49, T0 + 0.5, 4.0, adapt=False)) == 10
    assert retry_after(0.0) == 1


def test_a_paused_gate_admits_nobody_new_and_gives_a_provisional_wait():
    gate = Gate(next_place=20, mark_place=12.0, mark_at=T0, rate=0.0)
    assert gate.served(T0 + 100) == 12.0
    assert gate.admits(11, T0 + 100) and not gate.admits(12, T0 + 100)
    # Places 12 to 15 go on once it reopens: at the ceiling, or, adapting, from the start rate as it climbs.
    assert gate.wait(15, T0 + 100, 10.0, adapt=False) == pytest.approx(0.4)
    assert gate.wait(15, T0 + 100, 10.0, adapt=True) == pytest.approx(2 + 1 / 3)


def test_the_queue_is_the_reserved_places_ahead_of_the_mark():
    gate = Gate(next_place=100, mark_place=10.0, mark_at=T0, rate=5.0)
    assert gate.waiting(T0) == 90
    assert gate.waiting(T0 + 18) == 0


def test_rebasing_keeps_the_mark_where_it_was_and_applies_the_new_rate_from_then_on():
    gate = Gate(next_place=100, mark_place=10.0, mark_at=T0, rate=5.0)
    rebased = gate.rebased(T0 + 2, 1.0)
    assert rebased.served(T0 + 2) == 20.0
    assert rebased.served(T0 + 12) == 30.0


@pytest.mark.parametrize(
    ("rate", "recent", "size"),
    [
        (10000.0, 1000, MAX_BLOCK),
        (1000.0, 1000, 100),
        (1000.0, 3, 3),
        (100.0, 50, 10),
        (5.0, 50, 1),
        (0.0, 50, 1),
        (100.0, 0, 1),
    ],
)
def test_a_worker_reserves_about_what_it_handed_out_lately_and_a_tenth_of_a_second_of_the_rate_at_most(
    rate, recent, size
):
    assert block_size(rate, recent) == size


def test_a_slow_or_failed_round_halves_the_rate_down_to_a_floor():
    assert next_rate(40.0, 40.0, healthy=False) == 20.0
    assert next_rate(2.5, 40.0, healthy=False) == floor_rate(40.0) == 2.0
    assert floor_rate(0.2) == pytest.approx(1 / 60)


def test_a_fast_round_adds_a_tenth_of_the_ceiling_up_to_the_ceiling():
    assert next_rate(20.0, 40.0, healthy=True) == 24.0
    assert next_rate(39.0, 40.0, healthy=True) == 40.0
    assert next_rate(0.0, 40.0, healthy=True) == pytest.approx(6.0)


def test_after_an_outage_the_rate_starts_at_a_tenth_of_the_ceiling():
    assert start_rate(50.0) == 5.0


def test_a_round_is_fast_only_if_it_passed_under_half_the_latency_limit():
    assert healthy_round(True, 0.9, 2.0)
    assert not healthy_round(True, 1.0, 2.0)
    assert not healthy_round(False, 0.1, 2.0)


def test_visitors_booked_together_go_on_a_tenth_of_a_second_burst_at_once_then_one_at_a_time_at_the_rate():
    gate = Gate(next_place=100, mark_place=100.0, mark_at=T0, rate=20.0, send_at=T0 - 30)
    times = []
    for _ in range(12):
        gate = gate.booked(T0)
        times.append(round(send_time(gate, T0) - T0, 3))
    # 20 a second: SEND_BURST's worth (2) and the first go at once, then one every 50 ms.
    assert times == [0.0] * 3 + [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45]
    # New visitors whose turn came go at once while the schedule is no further ahead than the mark's burst.
    assert not gate.sending_freely(T0 + 0.25) and gate.sending_freely(T0 + 0.31)


def test_an_idle_schedule_lets_a_new_visitor_go_at_once():
    assert Gate(rate=20.0, send_at=T0).sending_freely(T0)
    assert send_time(Gate(rate=20.0, send_at=T0 - 5).booked(T0), T0) == T0


def test_a_wait_at_a_steady_rate_is_the_places_over_the_rate():
    assert projected_wait(40, 20.0, 20.0, adapt=True) == pytest.approx(2.0)
    assert projected_wait(40, 10.0, 20.0, adapt=False) == pytest.approx(4.0)
    assert projected_wait(0, 10.0, 20.0, adapt=True) == 0.0


def test_while_the_rate_climbs_the_wait_counts_on_the_climb_and_a_paused_gate_on_the_start_rate():
    # From 2 a second, a tenth of the ceiling (20) more each second: 2 + 4 + 6 + 8 = 20 places in 4 s, then 20/s.
    assert projected_wait(20, 2.0, 20.0, adapt=True) == pytest.approx(4.0)
    assert projected_wait(90 + 40, 2.0, 20.0, adapt=True) == pytest.approx(9 + 2.0)
    # Below the ceiling, it climbs from the rate in force: 10 + 12 + 14 in 3 s, then 4 at 16 a second.
    assert projected_wait(40, 10.0, 20.0, adapt=True) == pytest.approx(3.25)
    # Paused while the site is up (the checker has not stepped yet): as if from the start rate.
    assert projected_wait(20, 0.0, 20.0, adapt=True) == pytest.approx(4.0)
    # Without adapting, the ceiling is what comes into force.
    assert projected_wait(20, 0.0, 20.0, adapt=False) == pytest.approx(1.0)


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999])
def test_a_waiting_page_looks_again_never_after_the_turn_early_and_spread_while_far_exactly_when_close(draw):
    far = look_again_after(40.0, draw)
    assert 0.7 * 40 <= far < 40
    assert look_again_after(2.5, draw) == 2.5
    assert look_again_after(0.0, draw) == 0.05
    assert look_again_after(40.0, 0.0) != look_again_after(40.0, 0.5)
