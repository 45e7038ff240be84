"""The SQLite schema and its migrations (sqlite-utils), run in order on start; the version is how many have run.

PostgreSQL's DDL (postgres_migrations.PG_MIGRATIONS) follows these step for step; tests/test_postgres.py checks that
both end with the same tables, column types, NOT NULLs, defaults, primary keys and indexes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fallback.storage.outbox_schema import one_outbox
from fallback.storage.tables import (
    CHECKER_FIELDS,
    FOLLOWUP_FIELDS,
    LEAD_DEFAULTS_V1,
    LEAD_FIELDS_V1,
    LEAD_NOT_NULL_V1,
    PROBE_FIELDS,
    SUBMISSION_FIELDS,
    VERDICT_FIELDS,
    WEBHOOK_DELIVERY_FIELDS,
)

if TYPE_CHECKING:
    import sqlite_utils


def create_base_schema(db: sqlite_utils.Database) -> None:
    """Version 1: the meta, flag, mode history and leads tables."""
    db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
    db.table("flag").create(
        {
            "id": int,
            "mode": str,
            "mode_until": str,
            "mode_reason": str,
            "mode_by": str,
            "mode_changed_at": str,
            "state": str,
            "state_since": str,
            "state_reason": str,
            "version": int,
        },
        pk="id",
        not_null={"mode", "state", "version"},
        if_not_exists=True,
    )
    db.execute("INSERT OR IGNORE INTO flag (id, mode, state, version) VALUES (1, 'auto', 'unknown', 0)")
    db.table("mode_changes").create(
        {"id": int, "at": str, "mode": str, "until": str, "reason": str, "by": str},
        pk="id",
        not_null={"at", "mode"},
        if_not_exists=True,
    )
    # Name, message and consent could be NULL at first (until not_null_as_on_postgres).
    db.table("leads").create(
        LEAD_FIELDS_V1,
        pk="id",
        not_null=LEAD_NOT_NULL_V1 - {"name", "message", "consent"},
        defaults=LEAD_DEFAULTS_V1,
        if_not_exists=True,
    )
    _index_leads(db)


def _index_leads(db: sqlite_utils.Database) -> None:
    # Spam is kept apart: only genuine leads are unique per address.
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS leads_email_key ON leads(email_key) WHERE spam = 0")
    db.table("leads").create_index(["updated_at"], if_not_exists=True)


def add_checker_tables(db: sqlite_utils.Database) -> None:
    """Version 2: the checker's row, probe results, incidents and the events queue."""
    # One row: who holds the checker lease, and what its last round found.
    db.table("checker").create(CHECKER_FIELDS, pk="id", defaults={"network_doubt": 0}, if_not_exists=True)
    db.execute("INSERT OR IGNORE INTO checker (id, network_doubt) VALUES (1, 0)")
    db.table("probes").create(
        PROBE_FIELDS, pk="id", not_null={"at", "url", "ok"}, defaults={"control": 0}, if_not_exists=True
    )
    db.table("probes").create_index(["at"], if_not_exists=True)
    db.table("incidents").create(
        {"id": int, "started_at": str, "ended_at": str, "reason": str, "end_reason": str},
        pk="id",
        not_null={"started_at"},
        if_not_exists=True,
    )
    # Every flip and forced mode: the history, and the queue of notifications to send.
    db.table("events").create(
        {
            "id": int,
            "at": str,
            "kind": str,
            "title": str,
            "body": str,
            "notified_at": str,
            "gave_up_at": str,
            "attempts": int,
            "next_attempt_at": str,
            "last_error": str,
        },
        pk="id",
        not_null={"at", "kind", "title", "attempts"},
        defaults={"attempts": 0},
        if_not_exists=True,
    )
    db.table("events").create_index(["notified_at", "next_attempt_at"], if_not_exists=True)


def add_rate_limits(db: sqlite_utils.Database) -> None:
    """Version 3: the rate limit counters."""
    # One fixed-window counter per client; the key is a keyed hash, never a raw address.
    db.table("rate_limits").create({"key": str, "window_start": int, "count": int}, pk="key", if_not_exists=True)
    db.table("rate_limits").create_index(["window_start"], if_not_exists=True)


def not_null_as_on_postgres(db: sqlite_utils.Database) -> None:
    """Version 4: the columns PostgreSQL had NOT NULL from the start are NOT NULL here too."""
    _rebuild_not_null(db, "leads", LEAD_FIELDS_V1, LEAD_DEFAULTS_V1, LEAD_NOT_NULL_V1)
    _index_leads(db)
    _rebuild_not_null(db, "checker", CHECKER_FIELDS, {"network_doubt": 0}, {"network_doubt"})
    _rebuild_not_null(db, "probes", PROBE_FIELDS, {"control": 0}, {"at", "url", "ok", "control"})
    db.table("probes").create_index(["at"], if_not_exists=True)


def _rebuild_not_null(
    db: sqlite_utils.Database, table: str, fields: dict[str, type], defaults: dict[str, object], not_null: set[str]
) -> None:
    # SQLite cannot add NOT NULL to a column, and sqlite-utils' transform refuses a partial index:
    # the table is copied (ids kept, a NULL becoming its column's default) and renamed; its
    # indexes went with the old table, so the caller creates them again.
    db.table(f"{table}_rebuilt").create(fields, pk="id", not_null=not_null, defaults=defaults)
    values = ", ".join(f"COALESCE({name}, {defaults[name]!r})" if name in defaults else name for name in fields)
    db.execute(f"INSERT INTO {table}_rebuilt ({', '.join(fields)}) SELECT {values} FROM {table}")
    db.execute(f"DROP TABLE {table}")
    db.execute(f"ALTER TABLE {table}_rebuilt RENAME TO {table}")


def keep_every_submission(db: sqlite_utils.Database) -> None:
    """Version 5: every submission kept in `submissions`; each lead's stored message moves there."""
    db.table("submissions").create(
        SUBMISSION_FIELDS,
        pk="id",
        not_null={"lead_id", "at", "name", "message"},
        defaults={"name": "", "message": ""},
        if_not_exists=True,
    )
    db.table("submissions").create_index(["lead_id"], if_not_exists=True)
    # A double click sends one form twice: its key (token and fields hashed) is stored once; NULL never clashes.
    db.table("submissions").create_index(["form_key"], unique=True, if_not_exists=True)
    # The message a lead holds is its latest non-empty one: dated at the lead's latest submission.
    db.execute(
        "INSERT INTO submissions (lead_id, at, name, message, landing_path, language) "
        "SELECT id, updated_at, name, message, landing_path, language FROM leads"
    )
    db.execute("ALTER TABLE leads DROP COLUMN message")


def add_follow_up(db: sqlite_utils.Database) -> None:
    """Version 6: each lead's wish to be mailed when the site is back, and the queue of those mails."""
    leads = db.table("leads")
    leads.add_column("notify", int, not_null_default=0)
    # The wording shown with the box and when it was ticked, as for consent; when the lead was last mailed.
    for column in ("notify_text", "notify_at", "notified_at", "unsubscribed_at"):
        leads.add_column(column, str)
    db.table("followups").create(
        FOLLOWUP_FIELDS,
        pk="id",
        not_null={"lead_id", "created_at", "attempts"},
        defaults={"attempts": 0},
        if_not_exists=True,
    )
    _index_followups(db)


def _index_followups(db: sqlite_utils.Database) -> None:
    # One message waiting per lead, however many instances queue at once.
    db.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS followups_waiting ON followups(lead_id) "
        "WHERE (sent_at IS NULL) AND (failed_at IS NULL)"
    )
    db.table("followups").create_index(["next_attempt_at"], if_not_exists=True)


def add_webhooks(db: sqlite_utils.Database) -> None:
    """Version 7: the webhook deliveries, and the destinations the sender last synchronised (with 410 Gone marks)."""
    db.table("webhook_deliveries").create(
        WEBHOOK_DELIVERY_FIELDS,
        pk="id",
        not_null={"event_id", "type", "payload", "url", "created_at", "status", "attempts", "retry_until"},
        defaults={"attempts": 0, "status": "pending"},
        if_not_exists=True,
    )
    # The sender's claim reads the pending rows by next try; a destination's rows are postponed together.
    db.table("webhook_deliveries").create_index(["status", "next_attempt_at"], if_not_exists=True)
    db.table("webhook_deliveries").create_index(["url", "status"], if_not_exists=True)
    # A lead.created payload holds the lead's words: erasing the lead erases it too.
    db.table("webhook_deliveries").create_index(["lead_id"], if_not_exists=True)
    # FALLBACK_WEBHOOK_URLS as the sender last saw it: a destination that answered 410 Gone is marked here,
    # and the marks go with the rows when the setting changes.
    db.table("webhook_destinations").create(
        {"url": str, "gone_at": str, "gone_error": str}, pk="url", if_not_exists=True
    )


def add_verdicts_and_drill_leads(db: sqlite_utils.Database) -> None:
    """Version 8: the vantage points' verdicts (quorum), and a mark on the leads `fallback drill --rehearse` sends."""
    db.table("verdicts").create(
        VERDICT_FIELDS,
        pk="name",
        not_null={"kind", "state", "ok", "observed_at", "received_at", "first_seen_at"},
        if_not_exists=True,
    )
    # A drill lead is kept apart like spam: never exported, mailed or sent as a webhook's lead.created.
    db.table("leads").add_column("drill", int, not_null_default=0)


def rekey_leads_by_address(db: sqlite_utils.Database) -> None:
    """Version 9: leads keyed on the address with its domain IDNA-encoded and only ASCII lower-cased (storage.rekey)."""
    from fallback.storage.rekey import rekey_leads

    rekey_leads(db.execute)


def add_admission(db: sqlite_utils.Database) -> None:
    """Version 11: the admission gate's one row (fallback.core.admission), and the rate's recent history."""
    db.table("admission").create(
        {"id": int, "next_place": int, "mark_place": float, "mark_at": float, "rate": float, "holding": int},
        pk="id",
        not_null={"next_place", "mark_place", "mark_at", "rate", "holding"},
        defaults={"next_place": 0, "mark_place": 0.0, "mark_at": 0.0, "rate": 0.0, "holding": 0},
        if_not_exists=True,
    )
    db.execute("INSERT OR IGNORE INTO admission (id) VALUES (1)")
    db.table("admission_samples").create(
        {"at": str, "rate": float, "waiting": int}, not_null={"at", "rate", "waiting"}, if_not_exists=True
    )
    db.table("admission_samples").create_index(["at"], if_not_exists=True)


def add_admission_schedule(db: sqlite_utils.Database) -> None:
    """Version 12: the admission gate's send-on schedule (fallback.core.admission.Gate.send_at)."""
    db.table("admission").add_column("send_at", float, not_null_default=0.0)


# Each migration runs once, in order; the schema version is how many have run.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    create_base_schema,
    add_checker_tables,
    add_rate_limits,
    not_null_as_on_postgres,
    keep_every_submission,
    add_follow_up,
    add_webhooks,
    add_verdicts_and_drill_leads,
    rekey_leads_by_address,
    one_outbox,
    add_admission,
    add_admission_schedule,
]
