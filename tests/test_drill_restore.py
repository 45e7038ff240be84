"""Putting a mode back after a rehearsal (FlagStore.restore_mode), on both backends, with a fixed clock:
exactly as it was, also after the rehearsal's own mode expired; never over a mode someone set meanwhile."""

from __future__ import annotations

import concurrent.futures
from datetime import timedelta

import pytest
from helpers import wait_for

from fallback.core.clock import iso
from fallback.drill.rehearsal import restored_item
from fallback.storage import open_storage

BACKENDS = ["sqlite", "postgres"]
EXACT = ("mode", "mode_until", "mode_reason", "mode_by", "mode_changed_at")


def exact(flag) -> tuple:
    return tuple(getattr(flag, field) for field in EXACT)


def test_a_forced_mode_comes_back_with_its_expiry_reason_author_and_time(clocked_storage, clock):
    before = clocked_storage.flag.set_mode(
        "down", until=clock() + timedelta(hours=2), reason="TV slot", by="cli (alice)"
    )
    clock.now += timedelta(seconds=30)
    ours = clocked_storage.flag.set_mode(
        "down", until=clock() + timedelta(seconds=60), reason="drill", by="drill (bob)"
    )
    clock.now += timedelta(seconds=5)
    item = restored_item(clocked_storage, before, ours)
    assert item.status == "pass" and "TV slot" in item.detail
    assert exact(clocked_storage.flag.read()) == exact(before)
    assert clocked_storage.flag.mode_changes(1)[0].by == "drill (bob), restoring the mode set by cli (alice)"


def test_auto_comes_back_after_the_rehearsals_own_mode_expired(clocked_storage, clock):
    before = clocked_storage.flag.read()
    ours = clocked_storage.flag.set_mode(
        "down", until=clock() + timedelta(seconds=60), reason="drill", by="drill (bob)"
    )
    clock.now += timedelta(seconds=61)
    assert clocked_storage.flag.expire_mode()
    assert restored_item(clocked_storage, before, ours).status == "pass"
    assert exact(clocked_storage.flag.read()) == exact(before)


def test_the_checkers_flips_during_the_rehearsal_do_not_stop_the_restoration(clocked_storage, clock):
    before = clocked_storage.flag.set_mode("up", until=clock() + timedelta(hours=2), reason="TV slot", by="cli (alice)")
    ours = clocked_storage.flag.set_mode(
        "down", until=clock() + timedelta(seconds=60), reason="drill", by="drill (bob)"
    )
    clock.now += timedelta(seconds=1)
    assert clocked_storage.flag.flip("unknown", "up", "HTTP 200")
    assert restored_item(clocked_storage, before, ours).status == "pass"
    assert exact(clocked_storage.flag.read()) == exact(before) and clocked_storage.flag.read().state == "up"


def test_a_mode_someone_set_during_the_rehearsal_is_kept(clocked_storage, clock):
    before = clocked_storage.flag.read()
    ours = clocked_storage.flag.set_mode(
        "down", until=clock() + timedelta(seconds=60), reason="drill", by="drill (bob)"
    )
    theirs = clocked_storage.flag.set_mode("down", reason="the site fell for real", by="admin (carol)")
    item = restored_item(clocked_storage, before, ours)
    assert item.status == "warn" and "theirs is kept" in item.detail
    assert exact(clocked_storage.flag.read()) == exact(theirs)


@pytest.mark.postgres_only("SQLite's writers queue before their transaction begins, never inside it")
def test_a_mode_set_while_the_restoration_waits_for_the_flag_is_kept(clocked_storage, clock, database):
    before = clocked_storage.flag.read()
    ours = clocked_storage.flag.set_mode(
        "down", until=clock() + timedelta(seconds=60), reason="drill", by="drill (bob)"
    )
    carol = open_storage(database, clock)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            with carol.db.write() as conn:  # carol's change holds the flag's row, not yet committed
                now = iso(clock())
                carol.flag._record_mode(conn, now, "up", None, "back", "admin (carol)", now, "admin (carol)")
                restoring = pool.submit(clocked_storage.flag.restore_mode, before, ours)
                wait_for(
                    lambda: carol.db.read(
                        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'"
                    )[0][0],
                    10,
                    "the restoration waiting for carol's row",
                )
            restored = restoring.result(timeout=10)
        assert restored is None
        assert (clocked_storage.flag.read().mode, clocked_storage.flag.read().mode_by) == ("up", "admin (carol)")
    finally:
        carol.close()
