"""The checker and the outbox's senders, in daemon threads of a web worker (or of a test).

One worker of an instance probes for it under a quorum (InstanceLock); every worker runs a checker, and the
database lease lets only one of them probe at a time. fallback.serving.server starts and stops them from
gunicorn's hooks.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fallback.core.settings import Settings
from fallback.storage import Storage

if TYPE_CHECKING:
    from fallback.checking.checker import Checker
    from fallback.core.counters import Metrics


class InstanceLock:
    """Which worker of this instance is its one prober under a quorum: the one holding a file lock.

    The file lives in the folder the master made for this run (share_counts), so every worker of one
    instance shares it and no other instance does. The kernel lets go of the lock when its worker dies,
    and another worker takes it at its next try.
    """

    def __init__(self, folder: str):
        self.path = os.path.join(folder, "prober.lock")
        self.fd: int | None = None

    def held(self) -> bool:
        """Whether this process holds the lock, taking it if it is free."""
        if self.fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True


# How long a leaving worker waits for its background threads (a probe, a mail being sent) once the lease is given up.
JOIN_SECONDS = 3.0


class Background:
    """The checker and its senders, running in daemon threads of this process."""

    def __init__(self, checker: Checker, stopping: threading.Event):
        self.checker = checker
        self.stopping = stopping
        self.threads: list[threading.Thread] = []

    def start(self, target: Callable[..., object], *args: object, name: str) -> None:
        """Run `target(*args)` in a daemon thread named `name`."""
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop_soon(self) -> None:
        """Give the lease up now, in a thread of its own (it may wait for a round's writes); no thread is joined."""
        self.stopping.set()
        threading.Thread(target=self.checker.release, name="fallback-release", daemon=True).start()

    def stop(self, seconds: float = JOIN_SECONDS) -> None:
        """End the threads: the lease is given up at once, even mid-probe, then each thread gets `seconds` in all.

        Daemon threads die with the process: unless it is given up here, the lease outlives the process and
        another checker waits for it to lapse (three intervals and a timeout) before it takes over.
        """
        self.stopping.set()
        self.checker.release()
        deadline = time.monotonic() + seconds
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def start_in_background(
    settings: Settings,
    storage: Storage,
    self_key: bytes | None = None,
    metrics: Metrics | None = None,
    vantage: str | None = None,
    counts_folder: str | None = None,
) -> Background:
    """Run a checker (with the outbox's senders: notifications, follow-up mail, webhooks) in daemon threads, until
    `stop()`.

    With `self_key` (fallback.selfprobe.probe_key), a probe that reaches fallback itself fails as such; with
    `metrics`, the checker counts its probes and flips there. `vantage` names this instance under a quorum, and
    `counts_folder` (the folder `fallback serve` made for this run; none when a test calls this alone) holds
    the lock that makes one worker of this instance its prober.
    """
    # Imported here, not at the top: only a process that runs the checker needs `requests` and Apprise.
    from fallback.checking.checker import Checker
    from fallback.outbound.outbox import Courier, dispatch_forever

    stop = threading.Event()
    prober = InstanceLock(counts_folder).held if counts_folder else None
    checker = Checker(settings, storage, self_key=self_key, metrics=metrics, vantage=vantage, prober=prober)
    background = Background(checker, stop)
    background.start(checker.run, stop, name="fallback-checker")
    # One thread per configured kind of message: a hung webhook receiver never holds back the mail.
    senders: list[Courier] = []
    if settings.notify_urls:
        from fallback.outbound.notify import NotificationSender

        senders.append(NotificationSender(settings, storage))
    if settings.smtp_url:
        from fallback.outbound.followup import FollowupSender
        from fallback.serving.app import secret_key_for

        senders.append(FollowupSender(settings, storage, secret_key_for(settings, storage)))
    if settings.webhook_urls:
        from fallback.outbound.webhooks import WebhookSender

        senders.append(WebhookSender(settings, storage))
    for sender in senders:
        background.start(sender.run, checker, stop, name=f"fallback-{sender.kind}")
    if not senders:
        background.start(dispatch_forever, settings, storage, checker, stop, name="fallback-events")
    return background
