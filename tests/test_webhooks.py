"""Webhooks: each event queued with what caused it, posted to a receiver on 127.0.0.1, signed per Standard Webhooks
and verified there with the reference library; retried with the same id, 410 honoured, order kept, visitors never
kept waiting, and nothing lost across a restart."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from helpers import contact_fields, csrf_token, log_in
from standardwebhooks import Webhook
from webhook_receiver import HANG, SECRET, Receiver

from fallback.core.settings import Settings
from fallback.outbound.policy import POLICIES
from fallback.outbound.webhooks import CLAIM_SECONDS, WebhookSender
from fallback.serving.app import create_app
from fallback.storage import NewLead, open_storage
from fallback.storage.events import record_event

BACKENDS = ["sqlite", "postgres"]
pytestmark = pytest.mark.slow  # a webhook receiver on 127.0.0.1


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def hook_env(env, receiver):
    env.update({"FALLBACK_WEBHOOK_URLS": receiver.url, "FALLBACK_WEBHOOK_SECRET": SECRET})
    return env


@pytest.fixture
def hook_storage(hook_env, clock):
    """The database as an app of these settings opens it."""
    return open_storage(hook_env["FALLBACK_DATABASE"], clock)


def sender_for(env, storage, **overrides) -> WebhookSender:
    return WebhookSender(Settings.from_env({**env, **overrides}), storage)


def verified(post) -> dict:
    """A post's JSON, once the reference library has checked its signature and timestamp."""
    headers, body = post
    return Webhook(SECRET).verify(body, headers)


def deliveries(storage, limit=20):
    """The webhook messages in the outbox, newest first."""
    return storage.outbox.recent("webhook", limit)


def statuses(storage) -> list[str]:
    return [message.status for message in reversed(deliveries(storage))]


def test_each_event_type_is_posted_signed_and_verifiable_with_the_reference_library(
    hook_env, hook_storage, receiver, clock
):
    hook_storage.flag.flip("unknown", "down", "HTTP 503")
    hook_storage.flag.set_mode("down", until=clock.now + timedelta(hours=2), reason="TV at 8", by="cli")
    lead_id = hook_storage.leads.save(NewLead("Anne@Example.org", name="Anne", message="call me", consent=True))
    hook_storage.flag.flip("down", "up", "HTTP 200")
    assert sender_for(hook_env, hook_storage).deliver_pending() == 4
    events = [verified(post) for post in receiver.posts]
    assert [event["type"] for event in events] == ["incident.opened", "mode.changed", "lead.created", "incident.closed"]
    opened, mode, lead, closed = (event["data"] for event in events)
    assert events[0]["timestamp"] == "2026-11-28T20:00:00.000000Z"
    assert opened == {"incident_id": 1, "started_at": "2026-11-28T20:00:00.000000Z", "reason": "HTTP 503"}
    assert mode == {"mode": "down", "until": "2026-11-28T22:00:00.000000Z", "reason": "TV at 8", "by": "cli"}
    assert lead["id"] == lead_id and lead["email"] == "Anne@Example.org" and lead["message"] == "call me"
    assert lead["consent"] is True and lead["notify"] is False and lead["language"] == "en"
    assert closed["incident_id"] == 1 and closed["end_reason"] == "HTTP 200" and closed["reason"] == "HTTP 503"
    headers = receiver.posts[0][0]
    assert headers["webhook-id"].startswith("msg_") and headers["content-type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,")
    assert len({headers["webhook-id"] for headers, _ in receiver.posts}) == 4
    assert statuses(hook_storage) == ["delivered"] * 4


def test_a_forced_mode_expiring_is_a_mode_change_by_expiry(hook_env, hook_storage, receiver, clock):
    hook_storage.flag.set_mode("down", until=clock.now + timedelta(minutes=5))
    clock.now += timedelta(minutes=6)
    assert hook_storage.flag.expire_mode()
    sender_for(hook_env, hook_storage).deliver_pending()
    last = verified(receiver.posts[-1])
    assert last["type"] == "mode.changed" and last["data"] == {
        "mode": "auto",
        "until": None,
        "reason": None,
        "by": "expiry",
    }


def test_a_tampered_body_fails_the_receivers_verification(hook_env, hook_storage, receiver):
    hook_storage.flag.set_mode("down", by="cli")
    sender_for(hook_env, hook_storage).deliver_pending()
    headers, body = receiver.posts[0]
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify(body.replace('"down"', '"up"'), headers)


def test_a_flip_that_did_not_happen_records_and_sends_nothing(hook_env, hook_storage, receiver):
    assert not hook_storage.flag.flip("up", "down", "another checker flipped first")
    assert hook_storage.events.recent() == []
    assert sender_for(hook_env, hook_storage).deliver_pending() == 0 and receiver.posts == []


def test_an_event_caused_by_a_process_without_webhook_urls_is_sent_by_the_sender(hook_env, hook_storage, receiver):
    open_storage(hook_env["FALLBACK_DATABASE"]).flag.set_mode("down", by="cli")  # e.g. `fallback mode` elsewhere
    assert sender_for(hook_env, hook_storage).deliver_pending() == 1
    assert verified(receiver.posts[0])["data"]["by"] == "cli"


def test_without_webhook_urls_an_event_makes_no_delivery(env, storage):
    storage.flag.set_mode("down", by="cli")
    assert storage.events.dispatch(lambda event: []) == 1  # as a process without FALLBACK_WEBHOOK_URLS does
    assert deliveries(storage) == [] and storage.events.dispatch(lambda event: []) == 0


def test_an_event_is_recorded_in_the_transaction_of_its_cause_and_rolled_back_with_it(hook_storage):
    with pytest.raises(RuntimeError), hook_storage.db.write() as conn:
        record_event(conn, "2026-11-28T20:00:00.000000+00:00", "mode.changed", {"mode": "down"})
        raise RuntimeError("the mode change failed after recording its event")
    assert hook_storage.events.recent() == []


def test_forgetting_a_person_erases_their_lead_created_webhooks_sent_or_not(hook_env, hook_storage, receiver):
    hook_storage.leads.save(NewLead("anne@example.org", message="my phone is 555-0100"))
    sender_for(hook_env, hook_storage).deliver_pending()
    hook_storage.leads.save(NewLead("paul@example.org", message="hello"))
    hook_storage.flag.set_mode("down", by="cli")
    sender_for(hook_env, hook_storage).prepare()  # queued, not sent yet
    assert hook_storage.leads.forget("ANNE@example.org") == 1
    assert [message.topic for message in deliveries(hook_storage)] == ["mode.changed", "lead.created"]
    assert not any("555-0100" in row[0] for row in hook_storage.db.read("SELECT payload FROM outbox"))
    assert not any("555-0100" in row[0] for row in hook_storage.db.read("SELECT data FROM events"))


def test_a_receiver_that_fails_three_times_gets_the_same_webhook_id_until_it_accepts(
    hook_env, hook_storage, receiver, clock
):
    receiver.answers = [500, 503, 500]
    hook_storage.flag.set_mode("down", by="cli")
    sender = sender_for(hook_env, hook_storage)
    for delay in (0, 5, 10):
        clock.now += timedelta(seconds=delay)
        assert sender.deliver_pending() == 0
        assert sender.deliver_pending() == 0 and len(receiver.posts) == delay // 5 + 1  # not due yet: no hammering
    [pending] = deliveries(hook_storage)
    assert pending.status == "pending" and pending.last_status == 500 and "oops" in pending.last_error
    clock.now += timedelta(seconds=20)
    assert sender.deliver_pending() == 1
    assert len({headers["webhook-id"] for headers, _ in receiver.posts}) == 1 and len(receiver.posts) == 4
    assert [verified(post)["type"] for post in receiver.posts] == ["mode.changed"] * 4  # each try signed anew
    [delivered] = deliveries(hook_storage)
    assert (delivered.status, delivered.attempts, delivered.last_error) == ("delivered", 4, None)


def test_a_receiver_that_refuses_connections_is_retried_with_its_credentials_kept_out_of_the_error(
    hook_env, hook_storage, clock
):
    url = "http://hook:s3cr3t@127.0.0.1:1/hooks?token=t0k3n"
    hook_storage.flag.set_mode("down", by="cli")
    assert sender_for(hook_env, hook_storage, FALLBACK_WEBHOOK_URLS=url).deliver_pending() == 0
    [pending] = deliveries(hook_storage)
    assert pending.status == "pending" and pending.last_status is None
    assert "ConnectionError" in pending.last_error and "s3cr3t" not in pending.last_error
    assert "t0k3n" not in pending.last_error


def test_retries_start_seconds_apart_grow_to_an_hour_and_give_up_after_24_hours(
    hook_env, hook_storage, receiver, clock
):
    policy = POLICIES["webhook"]
    assert [policy.delay(attempts) for attempts in (1, 2, 3)] == [5, 10, 20]
    assert policy.delay(12) == policy.delay(40) == policy.longest == 3600
    receiver.answers = [503] * 100
    hook_storage.flag.set_mode("down", by="cli")
    sender = sender_for(hook_env, hook_storage)
    started = clock.now
    sender.deliver_pending()
    while deliveries(hook_storage)[0].status == "pending":
        clock.now += timedelta(seconds=policy.delay(deliveries(hook_storage)[0].attempts))
        sender.deliver_pending()
    [given_up] = deliveries(hook_storage)
    assert given_up.status == "failed" and given_up.last_status == 503
    last_try = given_up.last_attempt_at
    assert timedelta(hours=23) < clock.now - started and last_try < (started + timedelta(hours=24)).isoformat()
    assert 25 < len(receiver.posts) < 40


def test_a_receiver_answering_410_is_recorded_and_skipped_until_the_setting_changes(
    hook_env, hook_storage, receiver, clock
):
    receiver.answers = [410]
    hook_storage.flag.set_mode("down", by="cli")
    sender = sender_for(hook_env, hook_storage)
    sender.deliver_pending()
    hook_storage.flag.set_mode("up", by="cli")
    clock.now += timedelta(hours=1)
    sender.deliver_pending()
    assert len(receiver.posts) == 1
    gone, skipped = deliveries(hook_storage)[::-1]
    assert gone.status == "gone" and gone.last_status == 410 and "410" in gone.last_error
    assert skipped.status == "skipped" and "410 Gone" in skipped.last_error
    with Receiver() as other:  # the setting changes: the mark is lifted
        urls = f"{receiver.url},{other.url}"
        hook_storage.flag.set_mode("auto", by="cli")
        assert sender_for(hook_env, hook_storage, FALLBACK_WEBHOOK_URLS=urls).deliver_pending() == 2
        assert len(receiver.posts) == 2 and len(other.posts) == 1


def test_a_receiver_that_is_down_gets_its_events_in_order_once_back(hook_env, hook_storage, receiver, clock):
    receiver.answers = [503]  # after a timeout (no answer in time: _timing_out_once)
    hook_storage.flag.set_mode("down", reason="first", by="cli")
    hook_storage.flag.set_mode("up", reason="second", by="cli")
    hook_storage.flag.set_mode("auto", reason="third", by="cli")
    sender = sender_for(hook_env, hook_storage)
    sender.post = _timing_out_once(sender)
    for _ in range(3):
        sender.deliver_pending()
        clock.now += timedelta(seconds=30)
    reasons = [verified(post)["data"]["reason"] for post in receiver.posts]
    assert reasons == ["first", "first", "second", "third"]  # the 503 held the others back
    assert statuses(hook_storage) == ["delivered"] * 3


def test_events_recorded_while_a_receiver_is_down_wait_behind_the_one_it_failed(
    hook_env, hook_storage, receiver, clock
):
    receiver.answers = [503]
    hook_storage.flag.set_mode("down", reason="first", by="cli")
    sender = sender_for(hook_env, hook_storage)
    assert sender.deliver_pending() == 0  # 503: the receiver is down, its queue held for 5 s
    hook_storage.flag.set_mode("up", reason="second", by="cli")  # queued after the failure
    assert sender.deliver_pending() == 0 and len(receiver.posts) == 1  # held too, not sent ahead of the first
    clock.now += timedelta(seconds=5)
    assert sender.deliver_pending() == 2
    assert [verified(post)["data"]["reason"] for post in receiver.posts] == ["first", "first", "second"]


def test_an_event_a_receiver_refuses_does_not_hold_back_the_next(hook_env, hook_storage, receiver, clock):
    receiver.answers = [400]
    hook_storage.flag.set_mode("down", reason="first", by="cli")
    hook_storage.flag.set_mode("up", reason="second", by="cli")
    assert sender_for(hook_env, hook_storage).deliver_pending() == 1
    assert statuses(hook_storage) == ["pending", "delivered"]


def test_spam_and_repeated_submissions_are_never_sent_as_new_leads(hook_env, hook_storage, receiver):
    hook_storage.leads.save(NewLead("bot@example.org", spam_reason="honeypot"))
    hook_storage.leads.save(NewLead("anne@example.org", message="first", token="t1"))
    hook_storage.leads.save(NewLead("anne@example.org", message="first", token="t1"))  # a double click
    hook_storage.leads.save(NewLead("ANNE@example.org", message="second"))  # the same lead, updated
    hook_storage.leads.save(NewLead("bot@example.org", spam_reason="sent 0.1s after the page was shown"))
    sender_for(hook_env, hook_storage).deliver_pending()
    assert [verified(post)["data"]["email"] for post in receiver.posts] == ["anne@example.org"]


def test_a_spam_post_through_the_form_sends_nothing(hook_env, hook_storage, receiver):
    hook_storage.flag.set_mode("down", by="cli")
    client = create_app(Settings.from_env(hook_env), hook_storage).test_client()
    response = client.post("/_fallback/contact", data=contact_fields(client, website="http://spam.example"))
    assert response.status_code == 303
    client.post("/_fallback/contact", data=contact_fields(client, email="real@example.org"))
    sender_for(hook_env, hook_storage).deliver_pending()
    assert [verified(post)["type"] for post in receiver.posts] == ["mode.changed", "lead.created"]
    assert verified(receiver.posts[1])["data"]["email"] == "real@example.org"


def test_a_hung_receiver_never_delays_visitors(hook_env, hook_storage, receiver):
    receiver.answers = [HANG] * 10
    hook_storage.flag.set_mode("down", by="cli")
    sender = sender_for(hook_env, hook_storage)
    sender.timeout = (2.0, 30.0)  # a visitor made to wait for the post would wait this long
    stop = threading.Event()
    sending = threading.Thread(target=sender.deliver_pending, args=(stop,))
    sending.start()
    receiver.wait_for(1)
    client = create_app(Settings.from_env(hook_env), hook_storage).test_client()
    for index in range(5):
        fields = contact_fields(client, email=f"visitor{index}@example.org")
        started = time.monotonic()
        assert client.post("/_fallback/contact", data=fields).status_code == 303
        assert time.monotonic() - started < 10  # a third of the post's timeout: loose enough for a busy machine
    assert sending.is_alive()  # still waiting on the receiver: every visitor was thanked meanwhile
    stop.set()
    receiver.closing.set()  # the hung answer ends (unanswered), and the sender with it
    sending.join(15)
    sender.prepare()  # the leads' events, made into deliveries by the next round
    counts = hook_storage.outbox.counts("webhook")
    assert counts.pending == 6 and counts.delivered == 0  # the 5 leads queued, none lost


def test_a_delivery_queued_before_a_restart_is_sent_by_a_new_sender(hook_env, hook_storage, receiver, clock):
    hook_storage.flag.set_mode("down", by="cli")
    hook_storage.close()
    restarted = open_storage(hook_env["FALLBACK_DATABASE"], clock)
    assert sender_for(hook_env, restarted).deliver_pending() == 1
    assert verified(receiver.posts[0])["data"]["mode"] == "down"


def test_a_sender_killed_mid_post_is_relieved_with_the_same_webhook_id(hook_env, hook_storage, receiver, clock):
    hook_storage.flag.set_mode("down", by="cli")
    killed = sender_for(hook_env, hook_storage)
    killed.prepare()
    [claimed], _ = hook_storage.outbox.claim("webhook", CLAIM_SECONDS)
    killed.post(claimed)  # the receiver has it; the sender is killed before it records the answer
    restarted = sender_for(hook_env, open_storage(hook_env["FALLBACK_DATABASE"], clock))
    assert restarted.deliver_pending() == 0  # held by the killed sender's claim
    clock.now += timedelta(seconds=CLAIM_SECONDS)
    assert restarted.deliver_pending() == 1
    ids = [headers["webhook-id"] for headers, _ in receiver.posts]
    assert ids == [claimed.message_id] * 2  # at least once: the receiver de-duplicates by webhook-id


def test_two_senders_never_post_the_same_delivery_at_once(hook_env, hook_storage, receiver, clock):
    for index in range(15):
        hook_storage.flag.set_mode("down" if index % 2 else "up", reason=str(index), by="cli")
    senders = []
    for _ in range(3):
        storage = open_storage(hook_env["FALLBACK_DATABASE"], clock)
        senders.append(sender_for(hook_env, storage))
    threads = [threading.Thread(target=sender.deliver_pending) for sender in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    ids = [headers["webhook-id"] for headers, _ in receiver.posts]
    assert len(ids) == len(set(ids)) == 15


def test_the_dashboard_lists_the_deliveries_and_sends_one_again(hook_env, hook_storage, receiver, clock):
    receiver.answers = [410]
    hook_storage.flag.set_mode("down", by="cli")
    sender_for(hook_env, hook_storage).deliver_pending()
    client = create_app(Settings.from_env(hook_env), hook_storage).test_client()
    log_in(client)
    html = client.get("/_fallback/admin").get_data(as_text=True)
    assert 'id="webhooks"' in html and "mode.changed" in html and "gone" in html and "this hook was deleted" in html
    [delivery] = deliveries(hook_storage)
    retry = f"/_fallback/admin/webhooks/{delivery.id}/retry"
    assert client.post(retry, data={}).status_code == 400  # no CSRF token
    assert client.post(retry, data={"csrf_token": csrf_token(html)}).status_code == 303
    assert client.post("/_fallback/admin/webhooks/999/retry", data={"csrf_token": csrf_token(html)}).status_code == 404
    assert sender_for(hook_env, hook_storage).deliver_pending() == 1
    assert statuses(hook_storage) == ["delivered"]


def test_the_dashboard_hides_a_receivers_credentials_and_query(hook_env, hook_storage, receiver):
    secret_url = receiver.url.replace("http://", "http://user:pa55@") + "?token=s3cr3t"
    hook_storage.flag.set_mode("down", by="cli")
    sender_for(hook_env, hook_storage, FALLBACK_WEBHOOK_URLS=secret_url).prepare()
    client = create_app(
        Settings.from_env({**hook_env, "FALLBACK_WEBHOOK_URLS": secret_url}), hook_storage
    ).test_client()
    log_in(client)
    html = client.get("/_fallback/admin").get_data(as_text=True)
    assert receiver.url in html and "s3cr3t" not in html and "pa55" not in html


def test_the_process_holding_the_checker_lease_sends_them_in_the_background(hook_env, receiver):
    from fallback.serving.background import start_in_background

    settings = Settings.from_env({**hook_env, "FALLBACK_MAIN_URL": receiver.url, "FALLBACK_CHECK_INTERVAL": "1"})
    app = create_app(settings)
    storage = app.extensions["fallback"].storage
    background = start_in_background(settings, storage)
    try:
        storage.flag.set_mode("down", reason="deploy", by="api")
        [post] = receiver.wait_for(1)
        assert verified(post)["data"]["reason"] == "deploy"
    finally:
        background.stop()  # the checker gives its lease up as it stops


def _timing_out_once(sender):
    """The sender's post, but the first one times out (as a receiver that never answers would)."""
    from fallback.outbound.webhooks import Answer

    real, calls = sender.post, []

    def post(message):
        calls.append(message.id)
        if len(calls) == 1:
            return Answer(None, "no answer within 10 s")
        return real(message)

    return post


def test_the_queue_survives_json_round_trips_byte_for_byte(hook_env, hook_storage, receiver, clock):
    hook_storage.leads.save(NewLead("zoë@example.org", name="Zoë ✓", message='quote " and \\ backslash'))
    receiver.answers = [500]
    sender = sender_for(hook_env, hook_storage)
    sender.deliver_pending()
    clock.now += timedelta(seconds=5)
    sender.deliver_pending()
    first, second = (body for _, body in receiver.posts)
    assert first == second and json.loads(first)["data"]["name"] == "Zoë ✓"
