"""The PostgreSQL backend's connections: a pool shared by a worker's threads, the same SQL as SQLite.

The stores write their SQL once, with `?` and `:name` placeholders and syntax both databases
accept (ON CONFLICT, RETURNING, CASE); this layer only translates the placeholders. The schema
is written here in PostgreSQL's own DDL, step for step with the SQLite migrations.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from ..state import utcnow
from .base import BUSY_TIMEOUT_SECONDS, Database, StorageError

# Serialises concurrent migrations of one database (any constant shared by every instance).
MIGRATION_LOCK = 4_815_162_342
_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)")
_TIME = 'text COLLATE "C"'  # fixed-width ISO-8601 UTC texts: ordered byte by byte, as on SQLite

PG_MIGRATIONS: list[list[str]] = [
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
            ok integer NOT NULL, latency_ms integer, status integer, reason text, control integer NOT NULL DEFAULT 0)""",
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
]


def translate(sql: str) -> str:
    """SQLite's `?` and `:name` placeholders as psycopg's `%s` and `%(name)s`."""
    return _NAMED.sub(r"%(\1)s", sql.replace("?", "%s"))


def safe_url(url: str) -> str:
    """The database URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


class Row(dict):
    """A row that answers both `row["name"]` and `row[0]`, as sqlite3.Row does."""

    def __init__(self, names: list[str], values):
        super().__init__(zip(names, values))
        self._values = values

    def __getitem__(self, key):
        """By column name, or by position."""
        return self._values[key] if isinstance(key, int) else super().__getitem__(key)


def _row_factory(cursor):
    names = [column.name for column in cursor.description or ()]
    return lambda values: Row(names, values)


class _Connection:
    """A psycopg connection speaking the stores' placeholders."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql: str, params=()):
        """Run one statement; the cursor (rowcount, fetchall)."""
        return self._conn.execute(translate(sql), params or None)

    def executemany(self, sql: str, rows) -> None:
        """Run one statement for each of `rows`."""
        with self._conn.cursor() as cursor:
            cursor.executemany(translate(sql), list(rows))


class PostgresDatabase(Database):
    """The PostgreSQL connection layer the stores share."""

    lock_rows = " FOR UPDATE SKIP LOCKED"

    def __init__(self, path: str, clock: Callable[[], datetime] = utcnow):
        super().__init__(path, clock)
        import psycopg
        from psycopg_pool import ConnectionPool

        self._psycopg = psycopg
        self.pool = ConnectionPool(
            path, min_size=1, max_size=10, timeout=BUSY_TIMEOUT_SECONDS, open=False,
            kwargs={"row_factory": _row_factory, "connect_timeout": 5},
            # A connection that died with a server restart is replaced before anyone gets it.
            check=ConnectionPool.check_connection,
        )
        try:
            self.pool.open(wait=True, timeout=10)
        except Exception as error:
            self.pool.close()
            raise StorageError(f"cannot connect to the database {safe_url(path)}: {_short(error)}") from None

    def close(self) -> None:
        """Close the pool (before a fork, or at exit)."""
        self.pool.close()

    @contextmanager
    def _write(self) -> Iterator[_Connection]:
        try:
            with self.pool.connection() as conn, conn.transaction():
                yield _Connection(conn)
        except self._psycopg.Error as error:
            raise StorageError(f"the database write failed: {_short(error)}") from error
        except Exception as error:
            if type(error).__module__.startswith("psycopg_pool"):
                raise StorageError(f"the database is unreachable: {_short(error)}") from error
            raise

    def _read(self, sql: str, params: tuple | dict = ()) -> list:
        try:
            with self.pool.connection() as conn:
                return conn.execute(translate(sql), params or None).fetchall()
        except self._psycopg.Error as error:
            raise StorageError(f"the database read failed: {_short(error)}") from error
        except Exception as error:
            if type(error).__module__.startswith("psycopg_pool"):
                raise StorageError(f"the database is unreachable: {_short(error)}") from error
            raise

    def _stream(self, sql: str, params, batch: int) -> Iterator[dict]:
        try:
            with self.pool.connection() as conn, conn.transaction():
                # A server-side cursor: the export's memory does not grow with the rows.
                with conn.cursor(name="fallback_export") as cursor:
                    cursor.execute(translate(sql), params or None)
                    while rows := cursor.fetchmany(batch):
                        for row in rows:
                            yield dict(row)
        except self._psycopg.Error as error:
            raise StorageError(f"the database read failed: {_short(error)}") from error

    def _compact(self) -> None:
        try:
            with self._psycopg.connect(self.path, autocommit=True, connect_timeout=5) as conn:
                conn.execute("VACUUM leads")
        except self._psycopg.Error as error:
            raise StorageError(f"erased, but the table could not be vacuumed: {_short(error)}") from error

    def migrate(self) -> int:
        """Create or bring the schema up to date, one instance at a time; returns the schema version."""
        with self._write() as conn:
            conn.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text)")
            rows = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
            version = int(rows[0][0]) if rows else 0
            for statements in PG_MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(len(PG_MIGRATIONS)),),
            )
        return len(PG_MIGRATIONS)


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."
