"""The schema and its migrations, run in order on start; the version is how many have run."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


def create_base_schema(db: sqlite_utils.Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
    db.table("flag").create(
        {
            "id": int, "mode": str, "mode_until": str, "mode_reason": str, "mode_by": str,
            "mode_changed_at": str, "state": str, "state_since": str, "state_reason": str, "version": int,
        },
        pk="id", not_null={"mode", "state", "version"}, if_not_exists=True,
    )
    db.execute(
        "INSERT OR IGNORE INTO flag (id, mode, state, version) VALUES (1, 'auto', 'unknown', 0)"
    )
    db.table("mode_changes").create(
        {"id": int, "at": str, "mode": str, "until": str, "reason": str, "by": str},
        pk="id", not_null={"at", "mode"}, if_not_exists=True,
    )
    db.table("leads").create(
        {
            "id": int, "email": str, "email_key": str, "name": str, "message": str,
            "consent": int, "consent_version": str, "consent_text": str, "consent_at": str,
            "landing_path": str, "language": str, "created_at": str, "updated_at": str,
            "submissions": int, "spam": int, "spam_reason": str,
        },
        pk="id", not_null={"email", "email_key", "created_at", "updated_at", "submissions", "spam"},
        defaults={"submissions": 1, "spam": 0, "consent": 0, "name": "", "message": ""},
        if_not_exists=True,
    )
    # Spam is kept apart: only genuine leads are unique per address.
    db.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS leads_email_key ON leads(email_key) WHERE spam = 0"
    )
    db.table("leads").create_index(["updated_at"], if_not_exists=True)


def add_checker_tables(db: sqlite_utils.Database) -> None:
    # One row: who holds the checker lease, and what its last round found.
    db.table("checker").create(
        {"id": int, "owner": str, "lease_until": str, "heartbeat_at": str, "network_doubt": int, "note": str},
        pk="id", defaults={"network_doubt": 0}, if_not_exists=True,
    )
    db.execute("INSERT OR IGNORE INTO checker (id, network_doubt) VALUES (1, 0)")
    db.table("probes").create(
        {"id": int, "at": str, "url": str, "ok": int, "latency_ms": int, "status": int, "reason": str,
         "control": int},
        pk="id", not_null={"at", "url", "ok"}, defaults={"control": 0}, if_not_exists=True,
    )
    db.table("probes").create_index(["at"], if_not_exists=True)
    db.table("incidents").create(
        {"id": int, "started_at": str, "ended_at": str, "reason": str, "end_reason": str},
        pk="id", not_null={"started_at"}, if_not_exists=True,
    )
    # Every flip and forced mode: the history, and the queue of notifications to send.
    db.table("events").create(
        {"id": int, "at": str, "kind": str, "title": str, "body": str, "notified_at": str, "gave_up_at": str,
         "attempts": int, "next_attempt_at": str, "last_error": str},
        pk="id", not_null={"at", "kind", "title", "attempts"}, defaults={"attempts": 0}, if_not_exists=True,
    )
    db.table("events").create_index(["notified_at", "next_attempt_at"], if_not_exists=True)


def add_rate_limits(db: sqlite_utils.Database) -> None:
    # One fixed-window counter per client; the key is a keyed hash, never a raw address.
    db.table("rate_limits").create({"key": str, "window_start": int, "count": int}, pk="key", if_not_exists=True)
    db.table("rate_limits").create_index(["window_start"], if_not_exists=True)


# Each migration runs once, in order; the schema version is how many have run.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [create_base_schema, add_checker_tables, add_rate_limits]
