"""Moving up: copy a SQLite database into PostgreSQL, idempotently (a second run copies nothing)."""

from __future__ import annotations

from .base import Database

# table -> (columns copied, columns that identify a row already copied)
TABLES = {
    "leads": (("email", "email_key", "name", "message", "consent", "consent_version", "consent_text", "consent_at",
               "landing_path", "language", "created_at", "updated_at", "submissions", "spam", "spam_reason"),
              ("email_key", "spam", "created_at")),
    "incidents": (("started_at", "ended_at", "reason", "end_reason"), ("started_at",)),
    "mode_changes": (("at", "mode", "until", "reason", "by"), ("at", "mode")),
    "events": (("at", "kind", "title", "body", "notified_at", "gave_up_at", "attempts", "next_attempt_at",
                "last_error"), ("at", "kind", "title")),
}
FLAG_COLUMNS = ("mode", "mode_until", "mode_reason", "mode_by", "mode_changed_at", "state", "state_since",
                "state_reason")


def copy_database(source: Database, target: Database) -> dict[str, int]:
    """Copy leads, incidents, mode history, events, the flag and the secret key; how many rows were new."""
    copied = {}
    with target._write() as conn:
        for table, (columns, identity) in TABLES.items():
            rows = source._read(f"SELECT {', '.join(columns)} FROM {table} ORDER BY id")
            placeholders = ", ".join("?" for _ in columns)
            # A genuine lead already there under its address is kept as it is: one lead per address.
            exists = " AND ".join(f"{column} = ?" for column in identity)
            duplicate = " OR (spam = 0 AND email_key = ? AND ? = 0)" if table == "leads" else ""
            sql = (f"INSERT INTO {table} ({', '.join(columns)}) SELECT {placeholders} WHERE NOT EXISTS "
                   f"(SELECT 1 FROM {table} WHERE ({exists}){duplicate})")
            count = 0
            for row in rows:
                values = [row[column] for column in columns]
                keys = [row[column] for column in identity]
                extra = [row["email_key"], row["spam"]] if table == "leads" else []
                count += conn.execute(sql, [*values, *keys, *extra]).rowcount
            copied[table] = count
        flag = source._read(f"SELECT {', '.join(FLAG_COLUMNS)} FROM flag WHERE id = 1")[0]
        # Only a target that never changed takes the source's flag: never overwrite a live one.
        copied["flag"] = conn.execute(
            f"UPDATE flag SET {', '.join(f'{column} = ?' for column in FLAG_COLUMNS)}, version = 1 "
            "WHERE id = 1 AND version = 0",
            [flag[column] for column in FLAG_COLUMNS],
        ).rowcount
        secret = source._read("SELECT value FROM meta WHERE key = 'secret_key'")
        copied["secret_key"] = conn.execute(
            "INSERT INTO meta (key, value) VALUES ('secret_key', ?) ON CONFLICT (key) DO NOTHING",
            (secret[0][0],),
        ).rowcount if secret else 0
    return copied
