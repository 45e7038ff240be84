"""Lead digests through Apprise to a real json:// receiver on 127.0.0.1, on both backends: received with a count and
the dashboard's address and nothing a visitor wrote; a receiver that refuses, is gone, or never answers is retried
with the notifications' backoff, then given up, and no visitor waits for it."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from helpers import FixedClock, contact_fields
from procs import free_port
from webhook_receiver import HANG, Receiver

from fallback.core.settings import Settings
from fallback.outbound.digest import TOPIC
from fallback.outbound.messages import dispatch
from fallback.outbound.notify import NotificationSender, Notifier
from fallback.outbound.policy import POLICIES
from fallback.serving.app import create_app
from fallback.storage import NewLead, open_storage

pytestmark = pytest.mark.slow

BACKENDS = ["sqlite", "postgres"]
TRIES = POLICIES["notification"].tries
# What the visitors type: none of it may reach the team's channels.
VISITORS = [
    {"email": "jeanne.dupont@example.org", "name": "Jeanne Dupont", "message": "Rappelez-moi au 06 12 34 56 78"},
    {"email": "hans@beispiel.de", "name": "Hans Meier", "message": "Bitte um Rückruf wegen Auftrag 4711"},
]
SETTLED = datetime(2026, 11, 28, 20, 5, 10, tzinfo=UTC)  # the period 20:00-20:05, settled


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 28, 20, 1, tzinfo=UTC))


@pytest.fixture
def storage(database, clock):
    return open_storage(database, clock)


@pytest.fixture
def visitors(env, storage):
    """The app of a process on the database, serving the page: the visitors' posts go through it."""
    storage.flag.set_mode("down", by="cli")
    dispatch(storage, Settings.from_env({}))  # forced on by a process without notification URLs: no announcement
    return create_app(Settings.from_env(env), storage).test_client()


def digests_through_apprise(storage, url: str) -> NotificationSender:
    """The notification sender of a process with FALLBACK_NOTIFY_URLS=`url` and FALLBACK_NOTIFY_LEADS=5m."""
    environ = {
        "FALLBACK_NOTIFY_URLS": url,
        "FALLBACK_NOTIFY_LEADS": "5m",
        "FALLBACK_PUBLIC_URL": "https://sorry.example.com",
        "FALLBACK_SITE_NAME": "Acme",
    }
    return NotificationSender(Settings.from_env(environ), storage, Notifier([url]))


def json_url(receiver: Receiver, read_timeout: float = 4) -> str:
    return receiver.url.replace("http://", "json://") + f"?rto={read_timeout:g}"


def the_digest(storage):
    [message] = [each for each in storage.outbox.recent("notification") if each.topic == TOPIC]
    return message


def digests_in(posts) -> list[dict]:
    received = [json.loads(body) for _headers, body in posts]
    return [each for each in received if "new lead" in each["title"]]


def test_a_json_receiver_gets_the_count_and_the_dashboard_and_no_visitors_words(storage, clock, visitors):
    for visitor in VISITORS:
        assert visitors.post("/_fallback/contact", data=contact_fields(visitors, **visitor)).status_code == 303
    clock.now = SETTLED
    with Receiver() as receiver:
        assert digests_through_apprise(storage, json_url(receiver)).deliver_pending() == 1
    [(headers, body)] = receiver.posts
    received = json.loads(body)
    assert headers["content-type"].startswith("application/json")
    assert received["title"] == "[Acme] 2 new leads"
    assert received["message"] == (
        "2 new leads in the last 5 minutes: https://sorry.example.com/_fallback/admin\n"
        "(2026-11-28T20:05:00.000000+00:00)"
    )
    words = [said for visitor in VISITORS for value in visitor.values() for said in [value, *value.split()]]
    assert not [said for said in words if said.lower() in body.lower()]


@pytest.mark.parametrize("receiver_is", ["refusing", "gone"])
def test_a_receiver_that_refuses_or_is_gone_is_retried_with_backoff_then_given_up(storage, clock, receiver_is):
    storage.leads.save(NewLead(email="ann@example.org"))
    clock.now = SETTLED
    with Receiver(answers=[500] * TRIES) as receiver:
        url = json_url(receiver) if receiver_is == "refusing" else f"json://127.0.0.1:{free_port()}/hook"
        digests = digests_through_apprise(storage, url)
        for attempt in range(1, TRIES + 1):
            started = time.monotonic()
            assert digests.deliver_pending() == 0
            assert digests.deliver_pending() == 0  # not due yet: no hammering
            assert time.monotonic() - started < 10  # each try is bounded: a refusal is not waited out
            assert the_digest(storage).attempts == attempt
            clock.now += timedelta(seconds=301)
        assert digests.deliver_pending() == 0
    message = the_digest(storage)
    assert (message.status, message.attempts) == ("failed", TRIES) and message.last_error
    assert len(receiver.posts) == (TRIES if receiver_is == "refusing" else 0)


def test_a_receiver_that_never_answers_delays_no_visitor_and_is_tried_again(storage, clock, visitors):
    assert visitors.post("/_fallback/contact", data=contact_fields(visitors)).status_code == 303
    clock.now = SETTLED
    with Receiver(answers=[HANG]) as receiver:
        digests = digests_through_apprise(storage, json_url(receiver, read_timeout=10))
        sending = threading.Thread(target=digests.deliver_pending)
        sending.start()
        receiver.wait_for(1)
        started = time.monotonic()
        fields = contact_fields(visitors, email="during@example.org")
        assert visitors.post("/_fallback/contact", data=fields).status_code == 303
        # Loose on a busy machine, yet well under the 10 s a visitor would wait if the sending held them.
        assert time.monotonic() - started < 3.0 and sending.is_alive()  # the sender still waits on the receiver
        sending.join(30)
        assert (the_digest(storage).status, the_digest(storage).attempts) == ("pending", 1)  # to be tried again
        clock.now += timedelta(seconds=5)
        assert digests.deliver_pending() == 1 and len(receiver.posts) == 2
    assert "1 new lead in the last 5 minutes" in json.loads(receiver.posts[1][1])["message"]


def test_the_process_holding_the_checker_sends_the_digest_in_the_background(env, storage, clock):
    from fallback.serving.background import start_in_background

    storage.leads.save(NewLead(email="ann@example.org"))
    clock.now = SETTLED
    with Receiver() as receiver:  # the main site the checker probes (GET), and the digests' json:// receiver (POST)
        environ = {**env, "FALLBACK_MAIN_URL": receiver.url, "FALLBACK_CHECK_INTERVAL": "1"}
        environ |= {"FALLBACK_NOTIFY_URLS": json_url(receiver), "FALLBACK_NOTIFY_LEADS": "5m"}
        background = start_in_background(Settings.from_env(environ), storage)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not digests_in(receiver.posts):
                time.sleep(0.2)
        finally:
            background.stop()
    [digest] = digests_in(receiver.posts)
    assert digest["message"].startswith("1 new lead in the last 5 minutes")
