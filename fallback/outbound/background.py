"""The loop of the background senders (notifications, follow-up mail, webhooks): no Flask, no request.

Each sends only while this process holds the checker lease, so one process per database sends; a
round that fails is logged and tried again a second later, and never ends the thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from fallback.storage import StorageError

POLL_SECONDS = 1.0


class LeaseHolder(Protocol):
    """The checker, as the senders see it: whether this process holds the lease now."""

    @property
    def holding(self) -> bool: ...


def while_holding(
    checker: LeaseHolder, stop: threading.Event, one_round: Callable[[], object], what: str, log: logging.Logger
) -> None:
    """Run `one_round()` every second while `checker.holding`, until `stop` is set; `what` names it in the log."""
    while not stop.wait(POLL_SECONDS):
        if not checker.holding:
            continue
        try:
            one_round()
        except StorageError as error:
            log.warning("%s paused: %s", what, error)
        except Exception:  # a bug or a bad template must not end the thread: logged, tried again next round
            log.exception("%s failed", what)
