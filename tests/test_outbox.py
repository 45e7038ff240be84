"""The one outbox: the three queues of a version-8 database carried over with nothing in flight lost, and its mode
history kept as events, on both backends; every table that names a lead erased with it; one retry rule per kind."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from helpers import FixedClock
from old_schema import database_at
from webhook_receiver import SECRET

from fallback.core.clock import iso
from fallback.core.settings import Settings
from fallback.outbound.messages import dispatch
from fallback.outbound.policy import POLICIES
from fallback.storage import MIGRATIONS, NewLead, open_storage
from fallback.storage.base import LEAD_LINKED_TABLES

BACKENDS = ["sqlite", "postgres"]
VERSION_8 = 8
HOOK = "http://127.0.0.1:9/hooks"
# What the three queues of a version-8 database held: one row of each state, ids in the order they were queued.
QUEUED = [
    "INSERT INTO leads (id, email, email_key, name, consent, created_at, updated_at, notify) "
    "VALUES (1, 'anne@example.org', 'anne@example.org', 'Anne', 1, '2026-11-28T19:00:00', '2026-11-28T19:00:00', 1)",
    "INSERT INTO mode_changes (at, mode, until, reason, by) "
    "VALUES ('2026-11-28T20:01:00', 'down', '2026-11-28T22:00:00', 'TV', 'cli')",
    "INSERT INTO events (at, kind, title, body, notified_at, attempts) "
    "VALUES ('2026-11-28T20:00:00', 'flip', 'main site down', 'HTTP 503', '2026-11-28T20:00:01', 1)",
    "INSERT INTO events (at, kind, title, body, attempts, next_attempt_at, last_error) VALUES "
    "('2026-11-28T20:01:00', 'mode', 'mode set to down', 'by cli', 2, '2026-11-28T20:02:00', 'refused')",
    "INSERT INTO events (at, kind, title, body, gave_up_at, attempts) "
    "VALUES ('2026-11-28T20:03:00', 'flip', 'main site up', 'HTTP 200', '2026-11-28T20:09:00', 6)",
    "INSERT INTO followups (lead_id, created_at, attempts, next_attempt_at, last_error) "
    "VALUES (1, '2026-11-28T20:05:00', 1, '2026-11-28T20:06:00', '451 try again later')",
    "INSERT INTO webhook_deliveries (event_id, type, payload, url, created_at, status, attempts, retry_until) "
    "VALUES ('msg_1', 'mode.changed', '{\"n\":1}', 'http://127.0.0.1:9/hooks', '2026-11-28T20:01:00', 'delivered', "
    "1, '2026-11-29T20:01:00')",
    "INSERT INTO webhook_deliveries (event_id, type, payload, url, created_at, status, attempts, retry_until, "
    "last_status) VALUES ('msg_2', 'incident.closed', '{\"n\":2}', 'http://127.0.0.1:9/hooks', "
    "'2026-11-28T20:03:00', 'pending', 3, '2026-11-29T20:03:00', 503)",
    "INSERT INTO webhook_deliveries (event_id, type, payload, url, lead_id, created_at, status, attempts, retry_until) "
    "VALUES ('msg_3', 'lead.created', '{\"n\":3}', 'http://127.0.0.1:9/hooks', 1, '2026-11-28T20:04:00', 'pending', "
    "0, '2026-11-29T20:04:00')",
]


@pytest.fixture
def clock():
    return FixedClock()


def version_8_database(backend: str, database: str) -> None:
    """A database as version 8 left it, its queues holding QUEUED."""
    database_at(backend, database, VERSION_8, QUEUED)


def test_the_three_queues_are_carried_into_the_outbox_with_nothing_in_flight_lost(backend, database, clock):
    version_8_database(backend, database)
    storage = open_storage(database, clock)
    assert storage.db.schema_version() == len(MIGRATIONS)
    [mail] = storage.outbox.recent("followup")
    assert (mail.status, mail.lead_id, mail.attempts, mail.last_error) == ("pending", 1, 1, "451 try again later")
    notifications = storage.outbox.recent("notification")[::-1]
    assert [(n.topic, n.status, n.attempts) for n in notifications] == [
        ("incident.opened", "delivered", 1),
        ("mode.changed", "pending", 2),
        ("incident.closed", "failed", 6),
    ]
    assert json.loads(notifications[1].payload) == {
        "title": "mode set to down",
        "body": "by cli",
        "at": "2026-11-28T20:01:00",
    }
    hooks = storage.outbox.recent("webhook")[::-1]
    assert [(h.message_id, h.status, h.payload, h.destination) for h in hooks] == [
        ("msg_1", "delivered", '{"n":1}', HOOK),
        ("msg_2", "pending", '{"n":2}', HOOK),
        ("msg_3", "pending", '{"n":3}', HOOK),
    ]
    assert hooks[1].retry_until == "2026-11-29T20:03:00" and hooks[1].last_status == 503
    # The pending ones go out in their order, with their webhook-id, once due.
    storage.outbox.synchronise([HOOK])
    claimed, _ = storage.outbox.claim("webhook", 60)
    assert [message.message_id for message in claimed] == ["msg_2"]
    # The mode history is mode.changed events now, dispatched already: nothing is announced again.
    [change] = storage.flag.mode_changes()
    assert {key: getattr(change, key) for key in ("at", "mode", "until", "reason", "by")} == {
        "at": "2026-11-28T20:01:00",
        "mode": "down",
        "until": "2026-11-28T22:00:00",
        "reason": "TV",
        "by": "cli",
    }
    assert storage.events.dispatch(lambda event: pytest.fail(f"{event} sent again")) == 0


def test_every_table_that_names_a_lead_is_erased_with_it_and_vacuumed(storage, env):
    if storage.db.path.startswith("postgresql"):
        columns = "SELECT table_name FROM information_schema.columns WHERE column_name = 'lead_id'"
        naming = {row[0] for row in storage.db.read(columns)}
    else:
        tables = [row[0] for row in storage.db.read("SELECT name FROM sqlite_master WHERE type = 'table'")]
        naming = {
            table for table in tables if any(c[1] == "lead_id" for c in storage.db.read(f"PRAGMA table_info({table})"))
        }
    assert naming == set(LEAD_LINKED_TABLES)  # a new table with a lead_id belongs in the registry
    settings = Settings.from_env({**env, "FALLBACK_WEBHOOK_URLS": HOOK, "FALLBACK_WEBHOOK_SECRET": SECRET})
    storage.leads.save(NewLead("anne@example.org", message="my phone is 555-0100", notify=True, notify_text="yes"))
    dispatch(storage, settings)
    storage.followups.queue(storage.clock() + timedelta(seconds=1))
    count = " + ".join(f"(SELECT COUNT(*) FROM {table})" for table in LEAD_LINKED_TABLES)
    assert storage.db.read(f"SELECT {count}")[0][0] == 4  # a submission, an event, a webhook, a follow-up
    vacuumed = vacuums(storage)
    assert storage.leads.forget("ANNE@example.org") == 1
    assert storage.db.read(f"SELECT {count}")[0][0] == 0
    if vacuumed is not None:  # PostgreSQL: each of them vacuumed, none forgotten
        assert all(vacuums(storage)[table] == vacuumed[table] + 1 for table in LEAD_LINKED_TABLES)


def vacuums(storage) -> dict[str, int] | None:
    """How many times PostgreSQL vacuumed each table; None on SQLite (it compacts the whole file)."""
    if not storage.db.path.startswith("postgresql"):
        return None
    return {row[0]: row[1] for row in storage.db.read("SELECT relname, vacuum_count FROM pg_stat_user_tables")}


def test_each_kind_has_one_row_of_the_one_retry_rule(storage, clock):
    assert set(POLICIES) == {"notification", "followup", "webhook"}
    storage.leads.save(NewLead("anne@example.org", notify=True, notify_text="yes"))
    storage.followups.queue(storage.clock() + timedelta(seconds=1))
    [mail], _ = storage.outbox.claim("followup", 60, 1)
    tries = [POLICIES["followup"].next_try(replace(mail, attempts=n), clock.now) for n in range(1, 7)]
    assert [(when - clock.now).total_seconds() for when in tries[:5]] == [5, 10, 20, 40, 80]
    assert tries[5] is None  # six tries, then given up
    webhook = replace(mail, attempts=40, retry_until=iso(clock.now + timedelta(hours=2)))
    assert POLICIES["webhook"].next_try(webhook, clock.now) == clock.now + timedelta(hours=1)
    assert POLICIES["webhook"].next_try(webhook, clock.now + timedelta(hours=1, seconds=1)) is None
    # A receiver's Retry-After is honoured up to the longest wait.
    assert POLICIES["webhook"].next_try(replace(webhook, attempts=1), clock.now, 7200) == clock.now + timedelta(hours=1)
