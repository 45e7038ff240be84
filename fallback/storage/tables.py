"""The SQLite tables' columns that the migrations in schema.py create or rebuild tables from (SQLite cannot change
a column in place). They are what those migrations wrote, so they never change: a new column is a migration of
its own (docs/development.md, "Adding a column").
"""

from __future__ import annotations

# Frozen: the leads table as version 1 created it (the version-1 API's shape, `message` included, which version 5
# moved to `submissions`). Migrations 1 and 4 rebuild it from these; a new column is a new migration, never an edit
# here (docs/development.md, "Adding a column").
LEAD_FIELDS_V1: dict[str, type] = {
    "id": int,
    "email": str,
    "email_key": str,
    "name": str,
    "message": str,
    "consent": int,
    "consent_version": str,
    "consent_text": str,
    "consent_at": str,
    "landing_path": str,
    "language": str,
    "created_at": str,
    "updated_at": str,
    "submissions": int,
    "spam": int,
    "spam_reason": str,
}
LEAD_DEFAULTS_V1 = {"submissions": 1, "spam": 0, "consent": 0, "name": "", "message": ""}
LEAD_NOT_NULL_V1 = {
    "email",
    "email_key",
    "name",
    "message",
    "consent",
    "created_at",
    "updated_at",
    "submissions",
    "spam",
}
CHECKER_FIELDS: dict[str, type] = {
    "id": int,
    "owner": str,
    "lease_until": str,
    "heartbeat_at": str,
    "network_doubt": int,
    "note": str,
}
# Every submission of a lead, kept: nothing a later one says replaces what an earlier one said.
SUBMISSION_FIELDS: dict[str, type] = {
    "id": int,
    "lead_id": int,
    "at": str,
    "name": str,
    "message": str,
    "landing_path": str,
    "language": str,
    "form_key": str,
}
# The "we're back" mail: one row per message, pending until sent or given up.
FOLLOWUP_FIELDS: dict[str, type] = {
    "id": int,
    "lead_id": int,
    "created_at": str,
    "attempts": int,
    "next_attempt_at": str,
    "sent_at": str,
    "failed_at": str,
    "last_error": str,
}
# The webhooks: one row per (event, destination URL), pending until delivered, given up, gone or skipped.
WEBHOOK_DELIVERY_FIELDS: dict[str, type] = {
    "id": int,
    "event_id": str,
    "type": str,
    "payload": str,
    "url": str,
    "lead_id": int,
    "created_at": str,
    "status": str,
    "attempts": int,
    "next_attempt_at": str,
    "retry_until": str,
    "last_attempt_at": str,
    "last_status": int,
    "last_error": str,
}
# With FALLBACK_QUORUM above 1: each vantage point's latest verdict, one row per name (the latest wins).
VERDICT_FIELDS: dict[str, type] = {
    "name": str,
    "kind": str,
    "state": str,
    "ok": int,
    "reason": str,
    "observed_at": str,
    "received_at": str,
    "first_seen_at": str,
}
PROBE_FIELDS: dict[str, type] = {
    "id": int,
    "at": str,
    "url": str,
    "ok": int,
    "latency_ms": int,
    "status": int,
    "reason": str,
    "control": int,
}
