"""A database as an earlier schema version left it, on either backend: for the tests of a schema step."""

from __future__ import annotations

from collections.abc import Sequence

from fallback.storage import MIGRATIONS
from fallback.storage.postgres_migrations import PG_MIGRATIONS


def database_at(backend: str, database: str, version: int, statements: Sequence[str] = ()) -> None:
    """Make `database` as schema `version` left it, then run `statements` (SQL both backends read) in it."""
    if backend == "sqlite":
        import sqlite_utils

        old = sqlite_utils.Database(database)
        for migration in MIGRATIONS[:version]:
            migration(old)
        old["meta"].insert({"key": "schema_version", "value": str(version)}, pk="key")
        for statement in statements:
            old.execute(statement)
        old.conn.commit()
        old.close()
        return
    import psycopg

    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("CREATE TABLE meta (key text PRIMARY KEY, value text)")
        for step in PG_MIGRATIONS[:version]:
            for statement in step:
                if callable(statement):  # a step written in Python, as storage.rekey's
                    statement(conn.execute)
                else:
                    conn.execute(statement)
        conn.execute(f"INSERT INTO meta VALUES ('schema_version', '{version}')")
        for statement in statements:
            conn.execute(statement)
