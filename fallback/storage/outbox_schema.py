"""Schema version 10: one outbox for every outgoing message, and the events recorded once (sqlite-utils for SQLite;
postgres.PG_MIGRATIONS runs the same statements in its own DDL).

The three queues of version 8 (notifications in `events`, `followups`, `webhook_deliveries`) are carried over
row for row, in their order, so nothing queued or in flight is lost; the mode history (`mode_changes`) becomes
the mode.changed events it always was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

# Everything that happened and is announced (a flip, a mode, a new lead): recorded once, in the transaction of its
# cause, with its facts as JSON; the outbox's messages are made from it afterwards (outbound.messages.dispatch).
EVENT_FIELDS: dict[str, type] = dict(id=int, at=str, type=str, data=str, lead_id=int, dispatched_at=str)
# Every outgoing message, whatever its kind (a notification, a follow-up mail, a webhook): one claim, one retry policy.
OUTBOX_FIELDS: dict[str, type] = dict(
    id=int, kind=str, topic=str, destination=str, message_id=str, payload=str, lead_id=int, created_at=str,
    status=str, attempts=int, next_attempt_at=str, retry_until=str, last_attempt_at=str, last_status=int,
    last_error=str,
)  # fmt: skip
OUTBOX_NOT_NULL = {"kind", "topic", "created_at", "status", "attempts"}
OUTBOX_DEFAULTS = {"attempts": 0, "status": "pending"}

# The three queues' rows, carried into the outbox in their order (per kind, and so per webhook destination). A status
# keeps its meaning: `delivered` is what was notified, sent or delivered; `failed` what was given up.
CARRY_OVER = (
    "INSERT INTO outbox (kind, topic, destination, payload, created_at, status, attempts, next_attempt_at, "
    "last_error) SELECT 'notification', CASE WHEN kind = 'mode' THEN 'mode.changed' WHEN title LIKE '%down' "
    "THEN 'incident.opened' ELSE 'incident.closed' END, NULL, {json}('title', title, 'body', body, 'at', at), at, "
    "CASE WHEN notified_at IS NOT NULL THEN 'delivered' WHEN gave_up_at IS NOT NULL THEN 'failed' ELSE 'pending' END, "
    "attempts, next_attempt_at, last_error FROM events ORDER BY id",
    "INSERT INTO outbox (kind, topic, lead_id, created_at, status, attempts, next_attempt_at, last_attempt_at, "
    "last_error) SELECT 'followup', 'followup', lead_id, created_at, CASE WHEN sent_at IS NOT NULL THEN 'delivered' "
    "WHEN failed_at IS NOT NULL THEN 'failed' ELSE 'pending' END, attempts, next_attempt_at, "
    "COALESCE(sent_at, failed_at), last_error FROM followups ORDER BY id",
    "INSERT INTO outbox (kind, topic, destination, message_id, payload, lead_id, created_at, status, attempts, "
    "next_attempt_at, retry_until, last_attempt_at, last_status, last_error) SELECT 'webhook', type, url, event_id, "
    "payload, lead_id, created_at, status, attempts, next_attempt_at, retry_until, last_attempt_at, last_status, "
    "last_error FROM webhook_deliveries ORDER BY id",
)


def one_outbox(db: sqlite_utils.Database) -> None:
    """Version 10: one outbox for every outgoing message, and the events recorded once; the three queues'
    rows (notifications in `events`, `followups`, `webhook_deliveries`) are carried over, none lost."""
    db.table("outbox").create(
        OUTBOX_FIELDS, pk="id", not_null=OUTBOX_NOT_NULL, defaults=OUTBOX_DEFAULTS, if_not_exists=True
    )
    for statement in CARRY_OVER:
        db.execute(statement.format(json="json_object"))
    for table in ("events", "followups", "webhook_deliveries"):
        db.table(table).drop()
    db.table("events").create(EVENT_FIELDS, pk="id", not_null={"at", "type", "data"})
    db.execute(MODE_HISTORY.format(json="json_object"))
    db.table("mode_changes").drop()
    # A receiver that is down holds back all its messages, those queued later too, so that they stay in order.
    db.table("webhook_destinations").add_column("held_until", str)
    for statement in OUTBOX_INDEXES:
        db.execute(statement)


# The mode history becomes what it always was, mode.changed events (dispatched long ago: never announced again).
MODE_HISTORY = (
    "INSERT INTO events (at, type, data, dispatched_at) SELECT at, 'mode.changed', "
    "{json}('mode', mode, 'until', until, 'reason', reason, 'by', by), at FROM mode_changes ORDER BY id"
)

# The same on both backends (postgres.PG_MIGRATIONS runs them too).
OUTBOX_INDEXES = (
    # What a claim reads: the due messages of one kind, oldest first.
    "CREATE INDEX IF NOT EXISTS idx_outbox_kind_status_next ON outbox (kind, status, next_attempt_at)",
    # A destination's later messages are held back together (order per webhook receiver).
    "CREATE INDEX IF NOT EXISTS idx_outbox_destination_status ON outbox (destination, status)",
    "CREATE INDEX IF NOT EXISTS idx_outbox_lead_id ON outbox (lead_id)",
    # One follow-up waiting per lead, however many instances queue at once.
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_outbox_followup_waiting ON outbox (lead_id) "
    "WHERE kind = 'followup' AND status = 'pending'",
    "CREATE INDEX IF NOT EXISTS idx_events_dispatched_at ON events (dispatched_at)",
    "CREATE INDEX IF NOT EXISTS idx_events_lead_id ON events (lead_id)",
)
