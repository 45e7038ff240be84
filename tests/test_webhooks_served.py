"""Webhooks from a real `fallback serve`: a hung receiver while visitors send the form, then a restart that
delivers what was queued, in order, to a receiver on 127.0.0.1 that verifies each post with the reference library."""

from __future__ import annotations

import time

import pytest
import requests
from helpers import every_worker_answers, form_token, wait_for
from served import Served
from standardwebhooks import Webhook
from test_webhooks import SECRET
from webhook_receiver import HANG, Receiver

from fallback.storage import open_storage

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

BACKENDS = ["sqlite", "postgres"]
pytestmark = pytest.mark.slow  # `fallback serve` and a webhook receiver on 127.0.0.1
API_TOKEN = "webhooks-served-api-token"
VISITORS = 20


def send_the_form(url: str, email: str) -> float:
    """As a visitor of `url`'s page: send the form; how many seconds the post took."""
    page = requests.get(url + "/", allow_redirects=False, timeout=5)
    assert page.status_code == 503
    fields = {"token": form_token(page.text), "path": "/", "email": email, "consent": "y"}
    started = time.monotonic()
    response = requests.post(url + "/_fallback/contact", data=fields, allow_redirects=False, timeout=10)
    assert response.status_code == 303
    return time.monotonic() - started


def test_a_hung_receiver_delays_no_visitor_and_a_restart_delivers_the_queue_in_order(database, tmp_path):
    with Receiver([HANG]) as receiver:
        env = {
            "FALLBACK_MAIN_URL": "https://www.example.com",
            "FALLBACK_CHECK_URLS": receiver.url,  # its GET answers 200: the checker holds the lease, sees the site up
            "FALLBACK_DATABASE": database,
            "FALLBACK_CHECK_INTERVAL": "1",
            "FALLBACK_RATE_LIMIT": "0",
            "FALLBACK_FORM_MIN_SECONDS": "0",
            "FALLBACK_API_TOKEN": API_TOKEN,
            "FALLBACK_WEBHOOK_URLS": receiver.url,
            "FALLBACK_WEBHOOK_SECRET": SECRET,
        }
        with Served(env, tmp_path) as served:
            forced = requests.put(
                served.url + "/_fallback/api/v1/mode",
                json={"mode": "down", "reason": "deploy"},
                headers={"Authorization": f"Bearer {API_TOKEN}"},
                timeout=5,
            )
            assert forced.status_code == 200
            every_worker_answers(served.url + "/", 503)  # the worker that did not take the PUT may still redirect
            receiver.wait_for(1)  # the sender is now stuck on the receiver, which never answers
            took = [send_the_form(served.url, f"visitor{index}@example.org") for index in range(VISITORS)]
            # Half the sender's read timeout (fallback.outbound.webhooks.TIMEOUT, 10 s), which a visitor made to wait
            # for the post would wait: loose enough for a busy machine.
            assert max(took) < 5.0, took
            # Stopped once the sender gave up on that post (10 s), so that the restart need not wait out its claim.
            storage = open_storage(database)
            wait_for(lambda: storage.outbox.recent("webhook", 100)[-1].last_error, 20, "the hung post given up")
            # The visitors' events, recorded with their leads, become deliveries at the sender's next round.
            wait_for(lambda: storage.outbox.counts("webhook").pending == 1 + VISITORS, 10, "every event queued")
        receiver.closing.set()  # the hung answer ends; the receiver accepts every post from now on
        with Served(env, tmp_path):
            posts = receiver.wait_for(2 + VISITORS, 30)
            # Before the stop: a post whose answer is not recorded yet would be posted again (at least once).
            wait_for(lambda: storage.outbox.counts("webhook").delivered == 1 + VISITORS, 10, "every delivery recorded")
    events = [Webhook(SECRET).verify(body, headers) for headers, body in posts]
    assert [event["type"] for event in events] == ["mode.changed"] * 2 + ["lead.created"] * VISITORS
    assert posts[0][0]["webhook-id"] == posts[1][0]["webhook-id"]  # the same event, tried again
    assert [event["data"]["email"] for event in events[2:]] == [
        f"visitor{index}@example.org" for index in range(VISITORS)
    ]
