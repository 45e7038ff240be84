"""An interruption at the worst moment of a rehearsal: just after its forced mode is written, before the code that
restores it has begun. Ctrl-C there must restore the mode too, not leave the page forced until its expiry."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest

import fallback.drill.rehearsal as rehearsal
from fallback.core.clock import utcnow
from fallback.core.settings import Settings

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(autouse=True)
def ctrl_c_interrupts():
    """SIGINT raises KeyboardInterrupt, as in a terminal, even when the suite runs in the background (where a shell
    starts it with SIGINT ignored)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_right_after_the_forced_mode_is_written_restores_the_mode(env, storage, monkeypatch):
    storage.flag.set_mode("up", until=utcnow() + timedelta(hours=2), reason="TV slot at 20:00", by="cli (alice)")
    before = storage.flag.read()
    written = rehearsal.change_mode

    def write_then_interrupt(*args, **kwargs):
        forced = written(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # Python runs the handler at once: here, before the caller's `try`
        return forced

    monkeypatch.setattr(rehearsal, "change_mode", write_then_interrupt)
    settings = Settings.from_env({**env, "FALLBACK_PUBLIC_URL": "http://127.0.0.1:9"})
    try:
        rehearsal.rehearse(settings, storage, timedelta(seconds=30))
    except rehearsal.Interrupted as interrupted:
        restored = interrupted.restored
    except KeyboardInterrupt:
        pytest.fail("interrupted without restoring the mode")
    else:
        pytest.fail("not interrupted")
    assert restored.status == rehearsal.PASS, restored.detail
    after = storage.flag.read()
    assert (after.mode, after.mode_until, after.mode_reason, after.mode_by) == (
        before.mode,
        before.mode_until,
        before.mode_reason,
        before.mode_by,
    )


def test_a_signal_held_during_the_write_still_interrupts_after_it():
    with pytest.raises(KeyboardInterrupt), rehearsal.interruptions_held():
        os.kill(os.getpid(), signal.SIGINT)
        reached = True  # the interruption waits for the block's end
    assert reached
