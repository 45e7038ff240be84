"""Moving up: copy a SQLite database into PostgreSQL, idempotently (a second run copies nothing).

Rows are matched by natural keys, never by id (the target numbers its own rows): a genuine lead
by its address (the unique key, ON CONFLICT), suspected spam by address and time, an incident by
its start, an event (a mode change among them) by its time and content. A genuine lead the target has
already (sent there since, or copied before) is kept as the target has it. A submission is matched
by its lead (found again by that lead's natural key), time and message, so every message is copied once.
"""

from __future__ import annotations

import dataclasses

from fallback.storage.base import Database
from fallback.storage.records import LEAD_COLUMNS

# Every column a lead is exported with (its id aside), and what keeps spam apart.
LEAD_COPY_COLUMNS = ("email_key", *LEAD_COLUMNS[1:], "spam", "spam_reason", "drill")
SUBMISSION_COPY_COLUMNS = ("lead_id", "at", "name", "message", "landing_path", "language", "form_key")
# table -> (columns copied, the natural key: columns that identify a row already copied)
HISTORY_TABLES = {
    "incidents": (("started_at", "ended_at", "reason", "end_reason"), ("started_at",)),
    "events": (("at", "type", "data", "dispatched_at"), ("at", "type", "data")),
}
# A lead's events are not history: its lead.created stays behind with the messages (the outbox is not copied).
HISTORY_ROWS = {"events": "lead_id IS NULL"}
FLAG_COLUMNS = (
    "mode",
    "mode_until",
    "mode_reason",
    "mode_by",
    "mode_changed_at",
    "state",
    "state_since",
    "state_reason",
)
BATCH = 1000


@dataclasses.dataclass
class Copied:
    """What one table's copy did."""

    copied: int = 0
    already_there: int = 0


def _insert(table: str, columns: tuple[str, ...], identity: tuple[str, ...]) -> str:
    """INSERT one row unless a row with the same natural key is there (identity columns are NOT NULL)."""
    placeholders = ", ".join(f":{column}" for column in columns)
    exists = " AND ".join(f"{column} = :{column}" for column in identity)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {placeholders} "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {exists})"
    )


GENUINE_LEAD = (
    f"INSERT INTO leads ({', '.join(LEAD_COPY_COLUMNS)}) "
    f"VALUES ({', '.join(':' + column for column in LEAD_COPY_COLUMNS)}) "
    "ON CONFLICT (email_key) WHERE spam = 0 DO NOTHING"
)
SPAM_LEAD = _insert("leads", LEAD_COPY_COLUMNS, ("spam", "email_key", "created_at"))
SUBMISSION = _insert("submissions", SUBMISSION_COPY_COLUMNS, ("lead_id", "at", "message")) + " ON CONFLICT DO NOTHING"
# The target's id of a lead just copied or there already, found by the natural key it was matched by.
GENUINE_LEAD_ID = "SELECT id FROM leads WHERE email_key = :email_key AND spam = 0"
SPAM_LEAD_ID = "SELECT MIN(id) FROM leads WHERE spam = 1 AND email_key = :email_key AND created_at = :created_at"


def copy_database(source: Database, target: Database) -> dict[str, Copied]:
    """Copy leads (spam included) and their submissions, incidents, events (the mode history), the flag and the
    secret key, in one transaction of the target; what was copied and what was there already, by table."""
    report: dict[str, Copied] = {}
    with target.write() as conn:
        leads = report["leads"] = Copied()
        target_ids: dict[int, int] = {}  # the source's lead id -> the target's
        for row in source.stream(f"SELECT id, {', '.join(LEAD_COPY_COLUMNS)} FROM leads ORDER BY id", (), BATCH):
            source_id = row.pop("id")
            inserted = conn.execute(SPAM_LEAD if row["spam"] else GENUINE_LEAD, row).rowcount
            leads.copied += inserted
            leads.already_there += 1 - inserted
            found = conn.execute(SPAM_LEAD_ID if row["spam"] else GENUINE_LEAD_ID, row).fetchall()
            target_ids[source_id] = found[0][0]
        submissions = report["submissions"] = Copied()
        selected = ", ".join(SUBMISSION_COPY_COLUMNS)
        for row in source.stream(f"SELECT {selected} FROM submissions ORDER BY id", (), BATCH):
            if row["lead_id"] not in target_ids:
                continue  # a lead erased while the copy ran
            row["lead_id"] = target_ids[row["lead_id"]]
            inserted = conn.execute(SUBMISSION, row).rowcount
            submissions.copied += inserted
            submissions.already_there += 1 - inserted
        for table, (columns, identity) in HISTORY_TABLES.items():
            counts = report[table] = Copied()
            sql = _insert(table, columns, identity)
            where = f" WHERE {HISTORY_ROWS[table]}" if table in HISTORY_ROWS else ""
            for row in source.stream(f"SELECT {', '.join(columns)} FROM {table}{where} ORDER BY id", (), BATCH):
                inserted = conn.execute(sql, row).rowcount
                counts.copied += inserted
                counts.already_there += 1 - inserted
        flag = dict(source.read(f"SELECT {', '.join(FLAG_COLUMNS)} FROM flag WHERE id = 1")[0])
        # Only a target whose flag never changed takes the source's: a live one is never overwritten.
        changed = conn.execute(
            f"UPDATE flag SET {', '.join(f'{column} = :{column}' for column in FLAG_COLUMNS)}, version = 1 "
            "WHERE id = 1 AND version = 0",
            flag,
        ).rowcount
        report["flag"] = Copied(changed, 1 - changed)
        secret = source.read("SELECT value FROM meta WHERE key = 'secret_key'")
        inserted = (
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('secret_key', ?) ON CONFLICT (key) DO NOTHING",
                (secret[0][0],),
            ).rowcount
            if secret
            else 0
        )
        report["secret_key"] = Copied(inserted, int(bool(secret)) - inserted)
    return report
