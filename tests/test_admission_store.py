"""The shared admission gate on both backends: blocks reserved atomically, one rate for every instance."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from fallback.core.admission import send_time
from fallback.storage import open_storage

BACKENDS = ["sqlite", "postgres"]
pytestmark = pytest.mark.slow

T0 = 1_800_000_000.0


def test_a_new_database_holds_a_paused_gate_with_no_place_reserved(storage):
    gate = storage.admission.read()
    assert (gate.next_place, gate.rate) == (0, 0.0)
    assert storage.admission.holding() is False


def test_configuring_puts_the_ceiling_in_force_and_keeps_a_lower_rate_under_it(storage):
    assert storage.admission.configure(10.0, T0, paused=False).rate == 10.0
    storage.admission.set_rate(4.0, T0)
    assert storage.admission.configure(10.0, T0 + 1, paused=False).rate == 4.0
    assert storage.admission.configure(2.0, T0 + 2, paused=False).rate == 2.0
    assert storage.admission.configure(2.0, T0 + 3, paused=True).rate == 0.0


def test_a_block_is_reserved_with_the_mark_rebased_in_the_same_statement(storage):
    storage.admission.set_rate(10.0, T0)
    first, gate = storage.admission.reserve(8, T0)
    assert first == 0 and gate.next_place == 8
    # Idle since: the mark banked a quarter of a second's worth beyond the last reserved place, no more.
    first, gate = storage.admission.reserve(30, T0 + 60)
    assert first == 8 and gate.next_place == 38
    assert gate.mark_at == T0 + 60 and gate.mark_place == pytest.approx(8 + 2.5)
    assert gate.served(T0 + 61) == pytest.approx(20.5)
    # The 2.5 places the mark had passed go on as their visitors come: counted on the send-on schedule at once.
    assert gate.send_at == pytest.approx(T0 + 60 + 2.5 / 10)
    assert storage.admission.read() == gate


def test_a_rate_change_rebases_the_mark_so_the_places_before_keep_their_turn(storage):
    storage.admission.set_rate(10.0, T0)
    storage.admission.reserve(100, T0)
    gate = storage.admission.set_rate(2.0, T0 + 3)
    assert gate.served(T0 + 3) == pytest.approx(30)
    assert gate.served(T0 + 8) == pytest.approx(40)
    assert storage.admission.set_rate(0.0, T0 + 8).served(T0 + 100) == pytest.approx(40)


def test_concurrent_reservations_never_hand_out_one_place_twice(storage, settings):
    storage.admission.set_rate(1000.0, T0)
    others = [open_storage(settings.database) for _ in range(3)]
    handed: list[range] = []
    lock = threading.Lock()

    def reserve(store) -> None:
        for step in range(25):
            first, _ = store.admission.reserve(3, T0 + step * 0.01)
            with lock:
                handed.append(range(first, first + 3))

    threads = [threading.Thread(target=reserve, args=(other,)) for other in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    places = [place for block in handed for place in block]
    assert sorted(places) == list(range(3 * 25 * 3))
    for other in others:
        other.close()


def test_two_instances_on_one_database_share_one_rate(storage, settings):
    other = open_storage(settings.database)
    storage.admission.set_rate(10.0, T0)
    # A queue: both instances reserve far more places than the rate lets through.
    for step in range(20):
        (storage if step % 2 else other).admission.reserve(10, T0 + step * 0.1)
    seen_here, seen_there = storage.admission.read(), other.admission.read()
    assert seen_here == seen_there
    # Over the next 10 s, 10 per second go on, whichever instance looks.
    assert seen_here.served(T0 + 12) - seen_here.served(T0 + 2) == pytest.approx(100)
    other.admission.set_rate(5.0, T0 + 12)
    assert storage.admission.read().rate == 5.0
    other.close()


def test_holding_visitors_back_is_marked_once_each_way_with_its_event(storage):
    at = datetime(2027, 1, 15, 20, 0, tzinfo=UTC)
    assert storage.admission.mark_holding(True, 40, 5.0, at) is True
    assert storage.admission.mark_holding(True, 41, 5.0, at) is False
    assert storage.admission.holding() is True
    assert storage.admission.mark_holding(False, 0, 5.0, at + timedelta(minutes=1)) is True
    types = [event.type for event in storage.events.recent() if event.type.startswith("admission.")]
    assert sorted(types) == ["admission.started", "admission.stopped"]


def test_the_rate_history_is_kept_in_order_and_pruned(storage):
    at = datetime(2027, 1, 15, 20, 0, tzinfo=UTC)
    for minute in range(5):
        storage.admission.record(at + timedelta(minutes=minute), 10.0 - minute, minute * 3)
    assert [sample[1:] for sample in storage.admission.samples(at + timedelta(minutes=3))] == [(7.0, 9), (6.0, 12)]
    assert storage.admission.prune(at + timedelta(minutes=2)) == 2
    assert len(storage.admission.samples(at)) == 3


def test_visitors_booked_from_two_instances_share_one_send_on_schedule_as_the_pure_maths_says(storage, settings):
    other = open_storage(settings.database)
    storage.admission.set_rate(20.0, T0)
    expected = storage.admission.read()
    times = []
    for step in range(10):
        expected = expected.booked(T0)
        booked = (storage if step % 2 else other).admission.book(T0)
        assert booked.send_at == pytest.approx(expected.send_at)
        times.append(round(send_time(booked, T0) - T0, 3))
    # A tenth of a second's worth and one more at once, then one every 50 ms, whichever instance booked.
    assert times == [0.0] * 3 + [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35]
    # A rate change re-bases the mark and leaves the schedule alone.
    assert storage.admission.set_rate(10.0, T0 + 1).send_at == pytest.approx(T0 + 0.5)
    other.close()
