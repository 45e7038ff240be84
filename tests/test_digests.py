"""Lead digests (FALLBACK_NOTIFY_LEADS): the text, the period, and queueing once a period across processes, on both
backends, with a fixed clock. tests/test_digests_apprise.py sends them through Apprise to a real receiver."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from helpers import FixedClock

from fallback.core.settings import ConfigError, Settings
from fallback.outbound.digest import TOPIC, Period, digest_text, last_period, queue_digest, span
from fallback.outbound.notify import NotificationSender
from fallback.storage import NewLead, open_storage

BACKENDS = ["sqlite", "postgres"]
PUBLIC_URL = "https://sorry.example.com"
DASHBOARD = PUBLIC_URL + "/_fallback/admin"
# 20:00 on the fixed clock: periods of 5 minutes start at 20:00, 20:05, ...
EIGHT_PM = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return EIGHT_PM + timedelta(minutes=minutes)


# The pure part: the text and the period.


def test_a_digest_says_how_many_new_leads_in_which_period_and_where_the_dashboard_is():
    text = digest_text(12, at(0), at(5), DASHBOARD)
    assert text == {
        "title": "12 new leads",
        "body": "12 new leads in the last 5 minutes: https://sorry.example.com/_fallback/admin",
        "at": "2026-11-28T20:05:00.000000+00:00",
    }


def test_one_lead_is_said_in_the_singular():
    assert digest_text(1, at(0), at(1), DASHBOARD)["body"] == f"1 new lead in the last minute: {DASHBOARD}"


def test_without_a_public_url_the_digest_points_to_the_dashboard_in_words():
    assert digest_text(2, at(0), at(60), None)["body"] == "2 new leads in the last hour (see the dashboard)"


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(60, "minute"), (300, "5 minutes"), (3600, "hour"), (5400, "90 minutes"), (7200, "2 hours"), (90, "90 seconds")],
)
def test_a_period_is_said_in_its_largest_whole_unit(seconds, said):
    assert span(seconds) == said


@pytest.mark.parametrize(
    ("now", "seconds", "start", "end"),
    [
        (at(7.05), 300, at(0), at(5)),  # 20:07:03: the period that ended at 20:05
        (at(5) + timedelta(seconds=4), 300, at(-5), at(0)),  # 20:05:04: 20:00-20:05 is left to settle
        (at(5) + timedelta(seconds=5), 300, at(0), at(5)),  # 20:05:05: settled
        (at(30), 3600, at(-60), at(0)),  # hours are cut on the hour
        (at(1.5), 60, at(0), at(1)),
    ],
)
def test_periods_are_cut_at_the_same_instants_and_digested_once_settled(now, seconds, start, end):
    assert last_period(now, seconds) == Period(start, end)


@pytest.mark.parametrize("value", ["5x", "30s", "25h", "90.5s", "-5m", "5 leads"])
def test_a_bad_period_stops_start_up_naming_the_variable_and_what_it_expects(value):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"FALLBACK_NOTIFY_LEADS": value, "FALLBACK_NOTIFY_URLS": "json://127.0.0.1:9/hook"})
    assert str(raised.value).startswith("FALLBACK_NOTIFY_LEADS: expected `off`, or a period from 1m to 24h")


@pytest.mark.parametrize(("value", "seconds"), [("off", None), ("", None), ("5m", 300), ("1h30m", 5400), ("60", 60)])
def test_the_period_is_off_by_default_or_read_as_a_duration(value, seconds):
    environ = {"FALLBACK_NOTIFY_LEADS": value, "FALLBACK_NOTIFY_URLS": "json://127.0.0.1:9/hook"}
    assert Settings.from_env(environ).notify_leads == seconds


def test_digests_without_notification_urls_stop_start_up():
    with pytest.raises(ConfigError, match="FALLBACK_NOTIFY_URLS: expected where lead digests go"):
        Settings.from_env({"FALLBACK_NOTIFY_LEADS": "5m"})


# Queueing, on both backends.


@pytest.fixture
def clock():
    return FixedClock(EIGHT_PM)


@pytest.fixture
def storage(database, clock):
    return open_storage(database, clock)


def sender(storage, period="5m", notifier=None) -> NotificationSender:
    """The notification sender of a process with FALLBACK_NOTIFY_LEADS set to `period`."""
    settings = Settings.from_env(
        {
            "FALLBACK_NOTIFY_URLS": "json://127.0.0.1:9/hook",
            "FALLBACK_NOTIFY_LEADS": period,
            "FALLBACK_PUBLIC_URL": PUBLIC_URL,
            "FALLBACK_SITE_NAME": "Acme",
        }
    )
    return NotificationSender(settings, storage, notifier)


def lead_at(storage, clock, minutes: float, email: str, **fields) -> None:
    """A submission stored at 20:00 + `minutes` on the fixed clock."""
    clock.now = at(minutes)
    storage.leads.save(NewLead(email=email, **fields))


def digests(storage) -> list[dict]:
    """The digests queued, oldest first, as the notification sender reads them."""
    queued = [message for message in storage.outbox.recent("notification", 100) if message.topic == TOPIC]
    return [json.loads(message.payload) for message in reversed(queued)]


def test_the_new_leads_of_a_period_are_queued_once(storage, clock):
    lead_at(storage, clock, -1, "before@example.org")  # the period before
    for minute, email in ((0, "ann@example.org"), (2, "bob@example.org"), (4.99, "cy@example.org")):
        lead_at(storage, clock, minute, email)
    lead_at(storage, clock, 5, "after@example.org")  # the next period
    clock.now = at(5) + timedelta(seconds=10)
    notifications = sender(storage)
    assert notifications.queue_digest() == 3
    assert notifications.queue_digest() is None  # the same period: nothing more, not even a write
    assert sender(storage).queue_digest() is None  # another process on the database: claimed already
    assert [text["body"] for text in digests(storage)] == [f"3 new leads in the last 5 minutes: {DASHBOARD}"]
    clock.now = at(10) + timedelta(seconds=10)
    assert notifications.queue_digest() == 1  # the next period holds the one after
    assert len(digests(storage)) == 2


def test_two_storage_objects_racing_for_a_period_queue_one_digest(storage, database, clock):
    other = open_storage(database, clock)
    ready = threading.Barrier(2)
    counts: list[int | None] = []

    def race(each, period):
        ready.wait(10)
        counts.append(queue_digest(each, period, PUBLIC_URL))

    for round in range(5):
        lead_at(storage, clock, round * 5 + 1, f"lead{round}@example.org")
        clock.now = at(round * 5 + 5) + timedelta(seconds=6)
        counts.clear()
        period = last_period(clock.now, 300)
        threads = [threading.Thread(target=race, args=(each, period)) for each in (storage, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(counts, key=str) == [1, None]
    assert len(digests(storage)) == 5


def test_nothing_is_queued_for_a_period_without_a_new_lead(storage, clock):
    lead_at(storage, clock, -3, "regular@example.org")
    lead_at(storage, clock, 2, "Regular@Example.org", message="again")  # the same lead again: not a new one
    clock.now = at(5) + timedelta(seconds=10)
    assert sender(storage).queue_digest() == 0
    assert digests(storage) == [] and storage.outbox.recent("notification") == []


def test_spam_and_drill_leads_are_not_counted(storage, clock):
    lead_at(storage, clock, 1, "real@example.org")
    lead_at(storage, clock, 2, "bot@example.org", spam_reason="honeypot")
    lead_at(storage, clock, 3, "fast@example.org", spam_reason="too fast")
    lead_at(storage, clock, 4, "drill@example.org", drill=True)
    clock.now = at(5) + timedelta(seconds=10)
    assert sender(storage).queue_digest() == 1
    assert digests(storage)[0]["title"] == "1 new lead"


def test_a_digest_holds_no_address_name_or_message_of_a_lead(storage, clock):
    words = {"email": "jeanne.dupont@example.org", "name": "Jeanne Dupont", "message": "Rappelez-moi au 0612345678"}
    lead_at(storage, clock, 1, **words)
    clock.now = at(5) + timedelta(seconds=10)
    assert sender(storage).queue_digest() == 1
    [message] = storage.outbox.recent("notification")
    for said in (*words.values(), "jeanne", "dupont", "0612345678"):
        assert said not in message.payload.lower()


def test_a_shorter_period_after_a_longer_one_counts_no_lead_twice(storage, clock):
    for minute in (50, 51, 56):
        lead_at(storage, clock, minute, f"at{minute}@example.org")
    clock.now = at(55) + timedelta(seconds=10)
    assert sender(storage, "5m").queue_digest() == 2  # 20:50-20:55
    clock.now = at(60) + timedelta(seconds=10)
    assert sender(storage, "1h").queue_digest() == 1  # 20:00-21:00, but 20:50-20:55 was told already
    assert digests(storage)[-1]["body"] == f"1 new lead in the last 5 minutes: {DASHBOARD}"


def test_without_notify_leads_no_digest_is_queued(storage, clock):
    lead_at(storage, clock, 1, "real@example.org")
    clock.now = at(5) + timedelta(seconds=10)
    assert sender(storage, "off").queue_digest() is None
    assert digests(storage) == []


class FakeNotifier:
    def __init__(self):
        self.sent: list[tuple[str, str]] = []

    def send(self, title, body):
        self.sent.append((title, body))
        return True


def test_the_digest_is_sent_by_the_notification_sender_in_its_round(storage, clock):
    lead_at(storage, clock, 1, "one@example.org")
    lead_at(storage, clock, 2, "two@example.org")
    clock.now = at(5) + timedelta(seconds=10)
    notifier = FakeNotifier()
    assert sender(storage, notifier=notifier).deliver_pending() == 1
    assert notifier.sent == [
        ("[Acme] 2 new leads", f"2 new leads in the last 5 minutes: {DASHBOARD}\n(2026-11-28T20:05:00.000000+00:00)")
    ]
    [message] = storage.outbox.recent("notification")
    assert (message.status, message.attempts) == ("delivered", 1)


def test_spam_marked_not_spam_counts_in_the_period_it_came_in_and_only_there(storage, clock):
    lead_at(storage, clock, 1, "fast@example.org", spam_reason="too fast")
    lead_at(storage, clock, 2, "typist@example.org", spam_reason="too fast")
    clock.now = at(3)
    assert storage.spam.keep("fast@example.org") == 1  # rescued before its period was digested
    clock.now = at(5) + timedelta(seconds=10)
    assert sender(storage).queue_digest() == 1
    clock.now = at(6)
    assert storage.spam.keep("typist@example.org") == 1  # rescued once its period was told: it came in then
    clock.now = at(10) + timedelta(seconds=10)
    assert sender(storage).queue_digest() == 0
    assert [text["title"] for text in digests(storage)] == ["1 new lead"]
