"""Notifications: announced once, retried with backoff, never in the probe loop's way; through Apprise to a json://
receiver on 127.0.0.1, answering, refusing, slow, or gone."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import FixedClock

from fallback.core.settings import ConfigError, Settings
from fallback.outbound.notify import NotificationSender, Notifier
from fallback.outbound.policy import POLICIES
from fallback.storage import open_storage

MAX_ATTEMPTS = POLICIES["notification"].tries

BACKENDS = ["sqlite", "postgres"]


class FakeNotifier:
    def __init__(self, answers):
        self.answers = list(answers)
        self.sent = []

    def send(self, title, body):
        self.sent.append(title)
        answer = self.answers.pop(0) if self.answers else True
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def clock():
    return FixedClock()


@pytest.fixture
def storage(database, clock):
    return open_storage(database, clock)


def sender(storage, notifier, site_name="Acme", url="json://127.0.0.1:9/hook") -> NotificationSender:
    """The notification sender of a process with one FALLBACK_NOTIFY_URLS, announcing through `notifier`."""
    settings = Settings.from_env({"FALLBACK_NOTIFY_URLS": url, "FALLBACK_SITE_NAME": site_name})
    return NotificationSender(settings, storage, notifier)


def deliver_pending(storage, notifier, site_name="Acme") -> int:
    return sender(storage, notifier, site_name).deliver_pending()


def test_each_flip_and_forced_mode_is_announced_once(storage):
    storage.flag.flip("unknown", "down", "HTTP 503")
    storage.flag.set_mode("down", reason="TV", by="cli")
    notifier = FakeNotifier([])
    assert deliver_pending(storage, notifier, "Acme") == 2
    assert deliver_pending(storage, notifier, "Acme") == 0
    assert notifier.sent == ["[Acme] main site down", "[Acme] mode set to down"]


def test_a_failed_announcement_is_retried_later_then_given_up(storage, clock):
    storage.flag.flip("unknown", "down", "HTTP 503")
    notifier = FakeNotifier([ConnectionError("refused")] * MAX_ATTEMPTS)
    for _ in range(MAX_ATTEMPTS):
        assert deliver_pending(storage, notifier) == 0
        assert deliver_pending(storage, notifier) == 0  # not due yet: no hammering
        clock.now += timedelta(seconds=301)
    assert len(notifier.sent) == MAX_ATTEMPTS
    [message] = storage.outbox.recent("notification")
    assert message.status == "failed" and "refused" in message.last_error


def test_a_claimed_notification_is_not_sent_by_another_process(storage, database, clock):
    storage.flag.flip("unknown", "down", "HTTP 503")
    sender(storage, FakeNotifier([])).prepare()
    assert len(storage.outbox.claim("notification", 60)[0]) == 1
    assert open_storage(database, clock).outbox.claim("notification", 60) == ([], None)


def test_backoff_grows_and_stops(storage, clock):
    storage.flag.flip("unknown", "down", "HTTP 503")
    sender(storage, FakeNotifier([])).prepare()
    [message] = storage.outbox.recent("notification")
    policy = POLICIES["notification"]
    tries = [policy.next_try(replace(message, attempts=attempts), clock.now) for attempts in range(1, MAX_ATTEMPTS + 1)]
    delays = [(when - clock.now).total_seconds() for when in tries[:-1]]
    assert delays == sorted(delays) and delays[0] == 5.0
    assert tries[-1] is None


def test_events_recorded_before_notify_urls_were_set_are_not_announced_later(storage):
    storage.flag.flip("unknown", "down", "HTTP 503")
    without = NotificationSender(Settings.from_env({}), storage, FakeNotifier([]))
    without.prepare()  # a process without FALLBACK_NOTIFY_URLS dispatched it: into no notification
    storage.flag.set_mode("down", reason="TV", by="cli")
    notifier = FakeNotifier([])
    assert deliver_pending(storage, notifier) == 1 and notifier.sent == ["[Acme] mode set to down"]


def test_an_invalid_notify_url_stops_start_up_without_echoing_it():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"FALLBACK_NOTIFY_URLS": "json://127.0.0.1:9/ok, nosuch://user:secret@host"})
    assert "FALLBACK_NOTIFY_URLS" in str(raised.value) and "secret" not in str(raised.value)


class Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        Receiver.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_apprise_delivers_to_a_local_json_receiver(storage):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        Receiver.received = []
        storage.flag.flip("unknown", "down", "connection refused")
        url = f"json://127.0.0.1:{server.server_port}/hook"
        assert sender(storage, Notifier([url]), url=url).deliver_pending() == 1
        [message] = Receiver.received
        assert message["title"] == "[Acme] main site down"
        assert "connection refused" in message["message"]
    finally:
        server.shutdown()
        server.server_close()


def test_an_unreachable_receiver_is_a_failure_not_a_crash(storage):
    from procs import free_port

    storage.flag.flip("unknown", "down", "HTTP 503")
    url = f"json://127.0.0.1:{free_port()}/hook"
    assert sender(storage, Notifier([url]), url=url).deliver_pending() == 0
    [message] = storage.outbox.recent("notification")
    assert message.attempts == 1 and message.status == "pending" and message.last_error
