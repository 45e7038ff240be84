"""Notifications: announced once, retried with backoff, never in the probe loop's way."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fallback.core.settings import ConfigError, Settings
from fallback.outbound.notify import MAX_ATTEMPTS, Notifier, deliver_pending, retry_delay
from fallback.storage import open_storage

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


def test_each_flip_and_forced_mode_is_announced_once(clocked_storage):
    clocked_storage.flag.flip("unknown", "down", "HTTP 503")
    clocked_storage.flag.set_mode("down", reason="TV", by="cli")
    notifier = FakeNotifier([])
    assert deliver_pending(clocked_storage, notifier, "Acme") == 2
    assert deliver_pending(clocked_storage, notifier, "Acme") == 0
    assert notifier.sent == ["[Acme] main site down", "[Acme] mode set to down"]


def test_a_failed_announcement_is_retried_later_then_given_up(clocked_storage, clock):
    clocked_storage.flag.flip("unknown", "down", "HTTP 503")
    notifier = FakeNotifier([ConnectionError("refused")] * MAX_ATTEMPTS)
    for _ in range(MAX_ATTEMPTS):
        assert deliver_pending(clocked_storage, notifier) == 0
        assert deliver_pending(clocked_storage, notifier) == 0  # not due yet: no hammering
        clock.now += timedelta(seconds=301)
    assert len(notifier.sent) == MAX_ATTEMPTS
    [event] = clocked_storage.events.recent()
    assert event["gave_up_at"] is not None and "refused" in event["last_error"]


def test_a_claimed_event_is_not_sent_by_another_process(clocked_storage, database, clock):
    clocked_storage.flag.flip("unknown", "down", "HTTP 503")
    assert len(clocked_storage.events.claim(60)) == 1
    assert open_storage(database, clock).events.claim(60) == []


def test_backoff_grows_and_stops():
    delays = [retry_delay(attempt) for attempt in range(1, MAX_ATTEMPTS + 1)]
    assert delays[:-1] == sorted(delays[:-1]) and delays[0] == 5.0
    assert delays[-1] is None


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


def test_apprise_delivers_to_a_local_json_receiver(clocked_storage):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        Receiver.received = []
        clocked_storage.flag.flip("unknown", "down", "connection refused")
        notifier = Notifier([f"json://127.0.0.1:{server.server_port}/hook"])
        assert deliver_pending(clocked_storage, notifier, "Acme") == 1
        [message] = Receiver.received
        assert message["title"] == "[Acme] main site down"
        assert "connection refused" in message["message"]
    finally:
        server.shutdown()
        server.server_close()


def test_an_unreachable_receiver_is_a_failure_not_a_crash(clocked_storage):
    from procs import free_port

    clocked_storage.flag.flip("unknown", "down", "HTTP 503")
    assert deliver_pending(clocked_storage, Notifier([f"json://127.0.0.1:{free_port()}/hook"])) == 0
    assert clocked_storage.events.recent()[0]["attempts"] == 1
