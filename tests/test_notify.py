"""Notifications: announced once, retried with backoff, never in the probe loop's way; through Apprise to a json://
receiver on 127.0.0.1, answering, refusing, slow, or gone."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from webhook_receiver import HANG, Receiver

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


def sender(clocked_storage, notifier, site_name="Acme", url="json://127.0.0.1:9/hook") -> NotificationSender:
    """The notification sender of a process with one FALLBACK_NOTIFY_URLS, announcing through `notifier`."""
    settings = Settings.from_env({"FALLBACK_NOTIFY_URLS": url, "FALLBACK_SITE_NAME": site_name})
    return NotificationSender(settings, clocked_storage, notifier)


def deliver_pending(clocked_storage, notifier, site_name="Acme") -> int:
    return sender(clocked_storage, notifier, site_name).deliver_pending()


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
    [message] = clocked_storage.outbox.recent("notification")
    assert message.status == "failed" and "refused" in message.last_error


def test_a_claimed_notification_is_not_sent_by_another_process(clocked_storage, database, clock):
    clocked_storage.flag.flip("unknown", "down", "HTTP 503")
    sender(clocked_storage, FakeNotifier([])).prepare()
    assert len(clocked_storage.outbox.claim("notification", 60)[0]) == 1
    assert open_storage(database, clock).outbox.claim("notification", 60) == ([], None)


def test_backoff_grows_and_stops(clocked_storage, clock):
    clocked_storage.flag.flip("unknown", "down", "HTTP 503")
    sender(clocked_storage, FakeNotifier([])).prepare()
    [message] = clocked_storage.outbox.recent("notification")
    policy = POLICIES["notification"]
    tries = [policy.next_try(replace(message, attempts=attempts), clock.now) for attempts in range(1, MAX_ATTEMPTS + 1)]
    delays = [(when - clock.now).total_seconds() for when in tries[:-1]]
    assert delays == sorted(delays) and delays[0] == 5.0
    assert tries[-1] is None


def test_events_recorded_before_notify_urls_were_set_are_not_announced_later(clocked_storage):
    clocked_storage.flag.flip("unknown", "down", "HTTP 503")
    without = NotificationSender(Settings.from_env({}), clocked_storage, FakeNotifier([]))
    without.prepare()  # a process without FALLBACK_NOTIFY_URLS dispatched it: into no notification
    clocked_storage.flag.set_mode("down", reason="TV", by="cli")
    notifier = FakeNotifier([])
    assert deliver_pending(clocked_storage, notifier) == 1 and notifier.sent == ["[Acme] mode set to down"]


def test_an_invalid_notify_url_stops_start_up_without_echoing_it():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"FALLBACK_NOTIFY_URLS": "json://127.0.0.1:9/ok, nosuch://user:secret@host"})
    assert "FALLBACK_NOTIFY_URLS" in str(raised.value) and "secret" not in str(raised.value)


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


def through_apprise(clocked_storage, receiver, read_timeout=4) -> NotificationSender:
    """The sender as a process with FALLBACK_NOTIFY_URLS set to the receiver's json:// URL runs it."""
    url = receiver.url.replace("http://", "json://") + f"?rto={read_timeout}"
    return sender(clocked_storage, Notifier([url]), url=url)


@pytest.mark.slow
def test_apprise_delivers_to_a_local_json_receiver(clocked_storage, receiver):
    clocked_storage.flag.flip("unknown", "down", "connection refused")
    assert through_apprise(clocked_storage, receiver).deliver_pending() == 1
    [(_headers, body)] = receiver.posts
    message = json.loads(body)
    assert message["title"] == "[Acme] main site down"
    assert "connection refused" in message["message"]


@pytest.mark.slow
def test_a_receiver_that_refuses_is_retried_with_backoff_until_it_accepts(clocked_storage, receiver, clock):
    receiver.answers = [500, 503]
    clocked_storage.flag.flip("unknown", "down", "HTTP 503")
    notifications = through_apprise(clocked_storage, receiver)
    assert notifications.deliver_pending() == 0
    assert notifications.deliver_pending() == 0 and len(receiver.posts) == 1  # backing off: no hammering
    clock.now += timedelta(seconds=5)
    assert notifications.deliver_pending() == 0
    clock.now += timedelta(seconds=10)
    assert notifications.deliver_pending() == 1 and len(receiver.posts) == 3
    [message] = clocked_storage.outbox.recent("notification")
    assert (message.status, message.attempts, message.last_error) == ("delivered", 3, None)


@pytest.mark.slow
def test_a_receiver_that_never_answers_delays_no_visitor(env, clocked_storage, receiver, clock):
    from helpers import contact_fields

    from fallback.serving.app import create_app

    receiver.answers = [HANG]
    clocked_storage.flag.set_mode("down", by="cli")
    notifications = through_apprise(clocked_storage, receiver, read_timeout=10)
    sending = threading.Thread(target=notifications.deliver_pending)
    sending.start()
    receiver.wait_for(1)
    client = create_app(Settings.from_env(env), clocked_storage).test_client()
    started = time.monotonic()
    assert client.post("/_fallback/contact", data=contact_fields(client)).status_code == 303
    # Loose on a busy machine, yet well under the 10 s a visitor would wait if the sending held them.
    assert time.monotonic() - started < 3.0 and sending.is_alive()  # the sender still waits on the receiver
    sending.join(30)
    [message] = clocked_storage.outbox.recent("notification")
    assert message.status == "pending" and message.attempts == 1  # given up on this try: retried later


@pytest.mark.slow
def test_an_unreachable_receiver_is_a_failure_not_a_crash(clocked_storage):
    from procs import free_port

    clocked_storage.flag.flip("unknown", "down", "HTTP 503")
    url = f"json://127.0.0.1:{free_port()}/hook"
    assert sender(clocked_storage, Notifier([url]), url=url).deliver_pending() == 0
    [message] = clocked_storage.outbox.recent("notification")
    assert message.attempts == 1 and message.status == "pending" and message.last_error
