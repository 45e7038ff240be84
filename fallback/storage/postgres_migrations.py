"""PostgreSQL's schema, in its own DDL, step for step with the SQLite migrations (storage/schema.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fallback.storage.outbox_schema import CARRY_OVER, MODE_HISTORY, OUTBOX_INDEXES
from fallback.storage.rekey import rekey_leads

_TIME = 'text COLLATE "C"'  # fixed-width ISO-8601 UTC texts: ordered byte by byte, as on SQLite

# A step is SQL, or a function given the connection's `execute` (the same Python step as on SQLite).
PG_MIGRATIONS: list[list[str | Callable[[Callable[..., Any]], None]]] = [
    [
        "CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text)",
        f"""CREATE TABLE IF NOT EXISTS flag (id integer PRIMARY KEY, mode text NOT NULL, mode_until {_TIME},
            mode_reason text, mode_by text, mode_changed_at {_TIME}, state text NOT NULL, state_since {_TIME},
            state_reason text, version integer NOT NULL)""",
        "INSERT INTO flag (id, mode, state, version) VALUES (1, 'auto', 'unknown', 0) ON CONFLICT DO NOTHING",
        f"""CREATE TABLE IF NOT EXISTS mode_changes (id bigserial PRIMARY KEY, at {_TIME} NOT NULL,
            mode text NOT NULL, until {_TIME}, reason text, by text)""",
        f"""CREATE TABLE IF NOT EXISTS leads (id bigserial PRIMARY KEY, email text NOT NULL, email_key text NOT NULL,
            name text NOT NULL DEFAULT '', message text NOT NULL DEFAULT '', consent integer NOT NULL DEFAULT 0,
            consent_version text, consent_text text, consent_at {_TIME}, landing_path text, language text,
            created_at {_TIME} NOT NULL, updated_at {_TIME} NOT NULL, submissions integer NOT NULL DEFAULT 1,
            spam integer NOT NULL DEFAULT 0, spam_reason text)""",
        "CREATE UNIQUE INDEX IF NOT EXISTS leads_email_key ON leads (email_key) WHERE spam = 0",
        "CREATE INDEX IF NOT EXISTS idx_leads_updated_at ON leads (updated_at)",
    ],
    [
        f"""CREATE TABLE IF NOT EXISTS checker (id integer PRIMARY KEY, owner text, lease_until {_TIME},
            heartbeat_at {_TIME}, network_doubt integer NOT NULL DEFAULT 0, note text)""",
        "INSERT INTO checker (id, network_doubt) VALUES (1, 0) ON CONFLICT DO NOTHING",
        f"""CREATE TABLE IF NOT EXISTS probes (id bigserial PRIMARY KEY, at {_TIME} NOT NULL, url text NOT NULL,
            ok integer NOT NULL, latency_ms integer, status integer, reason text,
            control integer NOT NULL DEFAULT 0)""",
        "CREATE INDEX IF NOT EXISTS idx_probes_at ON probes (at)",
        f"""CREATE TABLE IF NOT EXISTS incidents (id bigserial PRIMARY KEY, started_at {_TIME} NOT NULL,
            ended_at {_TIME}, reason text, end_reason text)""",
        f"""CREATE TABLE IF NOT EXISTS events (id bigserial PRIMARY KEY, at {_TIME} NOT NULL, kind text NOT NULL,
            title text NOT NULL, body text, notified_at {_TIME}, gave_up_at {_TIME},
            attempts integer NOT NULL DEFAULT 0, next_attempt_at {_TIME}, last_error text)""",
        "CREATE INDEX IF NOT EXISTS idx_events_pending ON events (notified_at, next_attempt_at)",
    ],
    [
        "CREATE TABLE IF NOT EXISTS rate_limits (key text PRIMARY KEY, window_start bigint, count integer)",
        "CREATE INDEX IF NOT EXISTS idx_rate_limits_window ON rate_limits (window_start)",
    ],
    [],  # SQLite made NOT NULL what these tables had NOT NULL from the start (schema.not_null_as_on_postgres)
    [
        f"""CREATE TABLE IF NOT EXISTS submissions (id bigserial PRIMARY KEY, lead_id bigint NOT NULL,
            at {_TIME} NOT NULL, name text NOT NULL DEFAULT '', message text NOT NULL DEFAULT '',
            landing_path text, language text, form_key text)""",
        "CREATE INDEX IF NOT EXISTS idx_submissions_lead_id ON submissions (lead_id)",
        "CREATE UNIQUE INDEX IF NOT EXISTS idx_submissions_form_key ON submissions (form_key)",
        """INSERT INTO submissions (lead_id, at, name, message, landing_path, language)
            SELECT id, updated_at, name, message, landing_path, language FROM leads""",
        "ALTER TABLE leads DROP COLUMN message",
    ],
    [
        "ALTER TABLE leads ADD COLUMN IF NOT EXISTS notify integer NOT NULL DEFAULT 0",
        "ALTER TABLE leads ADD COLUMN IF NOT EXISTS notify_text text",
        f"ALTER TABLE leads ADD COLUMN IF NOT EXISTS notify_at {_TIME}",
        f"ALTER TABLE leads ADD COLUMN IF NOT EXISTS notified_at {_TIME}",
        f"ALTER TABLE leads ADD COLUMN IF NOT EXISTS unsubscribed_at {_TIME}",
        f"""CREATE TABLE IF NOT EXISTS followups (id bigserial PRIMARY KEY, lead_id bigint NOT NULL,
            created_at {_TIME} NOT NULL, attempts integer NOT NULL DEFAULT 0, next_attempt_at {_TIME},
            sent_at {_TIME}, failed_at {_TIME}, last_error text)""",
        """CREATE UNIQUE INDEX IF NOT EXISTS idx_followups_waiting ON followups (lead_id)
            WHERE sent_at IS NULL AND failed_at IS NULL""",
        "CREATE INDEX IF NOT EXISTS idx_followups_next_attempt_at ON followups (next_attempt_at)",
    ],
    [
        f"""CREATE TABLE IF NOT EXISTS webhook_deliveries (id bigserial PRIMARY KEY, event_id text NOT NULL,
            type text NOT NULL, payload text NOT NULL, url text NOT NULL, lead_id bigint, created_at {_TIME} NOT NULL,
            status text NOT NULL DEFAULT 'pending', attempts integer NOT NULL DEFAULT 0, next_attempt_at {_TIME},
            retry_until {_TIME} NOT NULL, last_attempt_at {_TIME}, last_status integer, last_error text)""",
        """CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_status_next_attempt_at
            ON webhook_deliveries (status, next_attempt_at)""",
        "CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_url_status ON webhook_deliveries (url, status)",
        "CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_lead_id ON webhook_deliveries (lead_id)",
        f"CREATE TABLE IF NOT EXISTS webhook_destinations (url text PRIMARY KEY, gone_at {_TIME}, gone_error text)",
    ],
    [
        f"""CREATE TABLE IF NOT EXISTS verdicts (name text PRIMARY KEY, kind text NOT NULL, state text NOT NULL,
            ok integer NOT NULL, reason text, observed_at {_TIME} NOT NULL, received_at {_TIME} NOT NULL,
            first_seen_at {_TIME} NOT NULL)""",
        "ALTER TABLE leads ADD COLUMN IF NOT EXISTS drill integer NOT NULL DEFAULT 0",
    ],
    [rekey_leads],  # schema.rekey_leads_by_address
    [
        f"""CREATE TABLE IF NOT EXISTS outbox (id bigserial PRIMARY KEY, kind text NOT NULL, topic text NOT NULL,
            destination text, message_id text, payload text, lead_id bigint, created_at {_TIME} NOT NULL,
            status text NOT NULL DEFAULT 'pending', attempts integer NOT NULL DEFAULT 0, next_attempt_at {_TIME},
            retry_until {_TIME}, last_attempt_at {_TIME}, last_status integer, last_error text)""",
        *(statement.format(json="json_build_object") for statement in CARRY_OVER),
        "DROP TABLE events, followups, webhook_deliveries",
        f"""CREATE TABLE events (id bigserial PRIMARY KEY, at {_TIME} NOT NULL, type text NOT NULL, data text NOT NULL,
            lead_id bigint, dispatched_at {_TIME})""",
        MODE_HISTORY.format(json="json_build_object"),
        "DROP TABLE mode_changes",
        f"ALTER TABLE webhook_destinations ADD COLUMN IF NOT EXISTS held_until {_TIME}",
        *OUTBOX_INDEXES,
    ],
    [
        """CREATE TABLE IF NOT EXISTS admission (id integer PRIMARY KEY, next_place bigint NOT NULL DEFAULT 0,
            mark_place double precision NOT NULL DEFAULT 0.0, mark_at double precision NOT NULL DEFAULT 0.0,
            rate double precision NOT NULL DEFAULT 0.0, holding integer NOT NULL DEFAULT 0)""",
        "INSERT INTO admission (id) VALUES (1) ON CONFLICT DO NOTHING",
        f"""CREATE TABLE IF NOT EXISTS admission_samples (at {_TIME} NOT NULL, rate double precision NOT NULL,
            waiting integer NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS idx_admission_samples_at ON admission_samples (at)",
    ],
    ["ALTER TABLE admission ADD COLUMN IF NOT EXISTS send_at double precision NOT NULL DEFAULT 0.0"],
]
