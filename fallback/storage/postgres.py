"""The PostgreSQL backend's connections: a pool shared by a worker's threads, the same SQL as SQLite.

The stores write their SQL once, with `?` and `:name` placeholders and syntax both databases
accept (ON CONFLICT, RETURNING, CASE); this layer only translates the placeholders. The schema
is written here in PostgreSQL's own DDL, step for step with the SQLite migrations.

A server that goes away (a restart, a fail-over) must neither hang the app nor need a restart of
it: a pooled connection the server hung up on is replaced before anyone uses it, and while the
server cannot be reached, operations fail within a second with a StorageError instead of waiting
for the whole pool timeout; the pool keeps trying to reconnect, in the background and on demand.
"""

from __future__ import annotations

import functools
import logging
import re
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from fallback.core.clock import utcnow
from fallback.storage.base import (
    BUSY_TIMEOUT_SECONDS,
    LEAD_LINKED_TABLES,
    READ_SCHEMA_VERSION,
    WRITE_SCHEMA_VERSION,
    Params,
    StorageError,
)
from fallback.storage.outbox_schema import CARRY_OVER, MODE_HISTORY, OUTBOX_INDEXES
from fallback.storage.rekey import rekey_leads

log = logging.getLogger("fallback.storage")

# Serialises concurrent migrations of one database (any constant shared by every instance).
MIGRATION_LOCK = 4_815_162_342
# Connections per process besides the request threads: the checker, the notifier, an export.
SPARE_CONNECTIONS = 4
CONNECT_TIMEOUT_SECONDS = 5
# How long an operation waits for a connection while the server is known to be unreachable.
UNREACHABLE_WAIT_SECONDS = 0.5
# How long one chain of reconnection attempts lasts (1 s, then 2 s apart) before the next
# operation starts a new one: a server back after a long outage is found again within seconds.
RECONNECT_SECONDS = 5.0

_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)")
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


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """SQLite's `?` and `:name` placeholders as psycopg's `%s` and `%(name)s` (a literal `%` as `%%`)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%").replace("?", "%s"))


def _params(params) -> tuple | list | dict:
    # Always a sequence or a mapping, never None: psycopg then reads `%%` as a literal `%`.
    return params if params else ()


def safe_url(url: str) -> str:
    """The database URL without its password, for messages and logs."""
    url = re.sub(r"(://[^:/@?]*):[^@/?]*@", r"\1:***@", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", url)


def _password(url: str) -> str | None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


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
        return self._conn.execute(translate(sql), _params(params))

    def executemany(self, sql: str, rows) -> None:
        """Run one statement for each of `rows`."""
        with self._conn.cursor() as cursor:
            cursor.executemany(translate(sql), list(rows))


class _Reachability:
    """What the pool's latest attempt to connect said: None while the server answers, else why not."""

    def __init__(self) -> None:
        self.problem: str | None = None
        self._lock = threading.Lock()

    def failed(self, problem: str) -> None:
        with self._lock:
            if self.problem is None:
                log.warning("the database is unreachable: %s", problem)
            self.problem = problem

    def succeeded(self) -> None:
        with self._lock:
            if self.problem is not None:
                log.warning("the database is reachable again")
            self.problem = None


def _connection_class(psycopg, reachability: _Reachability, scrub: Callable[[str], str]):
    """psycopg's Connection, telling `reachability` how each attempt to connect went."""

    class Connection(psycopg.Connection):
        @classmethod
        def connect(cls, *args, **kwargs):
            try:
                conn = super().connect(*args, **kwargs)
            except psycopg.Error as error:
                reachability.failed(scrub(_short(error)))
                raise
            reachability.succeeded()
            return conn

    return Connection


def _alive(conn, check: Callable) -> bool:
    """Whether an idle pooled connection still works, without a round trip in the usual case.

    An idle connection has nothing to read; if it has, the server hung up on it (a restart, a
    terminated backend, an idle timeout) or said something unexpected: then ask it for real.
    """
    if conn.closed or getattr(conn, "broken", False):
        return False
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        if not poller.poll(0):
            return True
        check(conn)
        return True
    except Exception:  # noqa: BLE001 - any failure means: do not use this connection
        return False


class PostgresDatabase:
    """The PostgreSQL connection layer the stores share: a pool, and sessions of their own for held locks."""

    lock_rows = " FOR UPDATE SKIP LOCKED"  # a claimed row is locked, and skipped by other claimers
    # SHARE conflicts with the ROW EXCLUSIVE lock every INSERT, UPDATE and DELETE holds until it commits.
    wait_for_writers = "LOCK TABLE {table} IN SHARE MODE"

    def __init__(self, path: str, clock: Callable[[], datetime] = utcnow, threads: int = 8):
        self.path = path
        self.clock = clock
        try:
            import psycopg
            import psycopg.rows
            from psycopg_pool import ConnectionPool, PoolTimeout
        except ImportError as error:
            raise StorageError(
                f"a postgresql:// database needs psycopg 3 and psycopg_pool ({error}): "
                "pip install 'psycopg[binary,pool]'"
            ) from None

        self._psycopg = psycopg
        self.driver_error = psycopg.Error  # what a session() raises
        self._pool_timeout = PoolTimeout
        self._check = ConnectionPool.check_connection
        self._secret = _password(path)
        self.reachability = _Reachability()
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "row_factory": _row_factory,
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "application_name": "fallback",
            # A connection a firewall or NAT dropped silently is noticed (keepalives) instead of
            # hanging a request until TCP gives up, minutes later.
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "tcp_user_timeout": 15_000,
        }
        # One attempt first, so that a wrong URL, password or host is reported at once and precisely.
        try:
            psycopg.connect(path, **self._kwargs).close()
        except psycopg.Error as error:
            raise StorageError(
                f"cannot connect to the database {safe_url(path)}: {self._scrub(_short(error))}"
            ) from None
        self.pool = ConnectionPool(
            path,
            min_size=1,
            max_size=threads + SPARE_CONNECTIONS,
            timeout=BUSY_TIMEOUT_SECONDS,
            open=False,
            kwargs=self._kwargs,
            connection_class=_connection_class(psycopg, self.reachability, self._scrub),
            reconnect_timeout=RECONNECT_SECONDS,
            name="fallback",
        )
        try:
            self.pool.open(wait=True, timeout=BUSY_TIMEOUT_SECONDS)
        except Exception as error:  # noqa: BLE001 - reported as a StorageError naming the URL
            self.pool.close()
            raise StorageError(
                f"cannot connect to the database {safe_url(path)}: {self._scrub(_short(error))}"
            ) from None

    def _scrub(self, text: str) -> str:
        """`text` without the database password, should a driver message ever repeat it."""
        return text.replace(self._secret, "***") if self._secret else text

    def describe(self, error: BaseException) -> str:
        """A driver error in one short line, without the database password."""
        return self._scrub(_short(error))

    def session(self) -> Any:
        """A psycopg connection of its own, outside the pool (autocommit), for a lock held across transactions.

        The caller closes it; it raises `driver_error`, not StorageError.
        """
        return self._psycopg.connect(self.path, **self._kwargs)

    def close(self) -> None:
        """Close the pool: every pooled connection; this object is unusable afterwards."""
        self.pool.close()

    # -- connections -------------------------------------------------------

    def _checkout(self):
        """A working connection from the pool, or a StorageError: quickly while the server is unreachable."""
        started = time.monotonic()
        while True:
            problem = self.reachability.problem
            waited = time.monotonic() - started
            limit = UNREACHABLE_WAIT_SECONDS if problem else BUSY_TIMEOUT_SECONDS
            if waited >= limit:
                if problem:
                    raise StorageError(f"the database is unreachable: {problem}")
                raise StorageError(f"no database connection was free within {BUSY_TIMEOUT_SECONDS:g} s")
            try:
                # In short slices, so that a server found unreachable meanwhile ends the wait early.
                conn = self.pool.getconn(timeout=min(limit - waited, 0.25))
            except self._pool_timeout:
                continue
            except self._psycopg.Error as error:  # the pool is closed
                raise StorageError(f"the database is unavailable: {_short(error)}") from error
            if _alive(conn, self._check):
                return conn
            # Dead (the server restarted): closed, the pool replaces it; try the next one at once.
            conn.close()
            self.pool.putconn(conn)

    @contextmanager
    def _connection(self, what: str) -> Iterator:
        """A pooled connection (autocommit), its psycopg errors raised as StorageError."""
        conn = self._checkout()
        try:
            yield conn
        except self._psycopg.Error as error:
            raise StorageError(f"the database {what} failed: {self._scrub(_short(error))}") from error
        finally:
            self.pool.putconn(conn)

    @contextmanager
    def write(self, durable: bool = True) -> Iterator[_Connection]:
        """A transaction on a pooled connection, committed on exit (`durable=False`: without waiting for the WAL
        to reach the disk, for this transaction only)."""
        with self._connection("write") as conn, conn.transaction():
            if not durable:
                conn.execute("SET LOCAL synchronous_commit TO OFF")
            yield _Connection(conn)

    def read(self, sql: str, params: Params = ()) -> list[Row]:
        """The rows of one query, on a pooled connection."""
        with self._connection("read") as conn:
            return conn.execute(translate(sql), _params(params)).fetchall()

    def stream(self, sql: str, params: Params, batch: int) -> Iterator[dict[str, Any]]:
        """The rows of a long query, `batch` at a time, through a server-side cursor."""
        with self._connection("read") as conn, conn.transaction():
            # A server-side cursor: the export's memory does not grow with the rows. Plain tuples
            # zipped into dicts, as on SQLite: cheaper than rows that answer by name and position.
            with conn.cursor(name="fallback_export", row_factory=self._psycopg.rows.tuple_row) as cursor:
                cursor.execute(translate(sql), _params(params))
                names = [column.name for column in cursor.description]
                while rows := cursor.fetchmany(batch):
                    yield from (dict(zip(names, row)) for row in rows)

    def compact(self) -> None:
        """Vacuum the leads and every table naming them, so that erased rows' space is reclaimed."""
        # Outside a transaction (the pool's connections are autocommit): the erased rows' space is
        # reclaimed, so they are not kept around in the tables' pages. What VACUUM cannot reach (WAL
        # segments, backups, replicas) is said in docs/leads.md.
        try:
            with self._connection("vacuum") as conn:
                conn.execute(f"VACUUM {', '.join(('leads', *LEAD_LINKED_TABLES))}")
        except StorageError as error:
            raise StorageError(f"the tables could not be vacuumed: {error}") from error

    def migrate(self) -> int:
        """Create or bring the schema up to date, one instance at a time; returns the schema version."""
        with self.write() as conn:
            conn.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text)")
            version = _version(conn.execute(READ_SCHEMA_VERSION).fetchall())
            for statements in PG_MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement) if isinstance(statement, str) else statement(conn.execute)
            conn.execute(WRITE_SCHEMA_VERSION, (str(len(PG_MIGRATIONS)),))
        return len(PG_MIGRATIONS)

    def schema_version(self) -> int:
        """How many migrations the database has had (0 for a new one)."""
        try:
            return _version(self.read(READ_SCHEMA_VERSION))
        except StorageError:
            return 0  # no meta table yet


def _version(rows: list) -> int:
    return int(rows[0][0]) if rows else 0


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."


def ping(url: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> str:
    """Connect once, outside any pool, and return the server's version; StorageError saying why not.

    `fallback drill` asks this of a PostgreSQL FALLBACK_DATABASE: reachable from here, with these credentials.
    """
    try:
        import psycopg
    except ImportError as error:
        raise StorageError(f"a postgresql:// database needs psycopg 3 ({error})") from None
    secret = _password(url)
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout)), application_name="fallback drill") as conn:
            return str(conn.execute("SHOW server_version").fetchall()[0][0])
    except psycopg.Error as error:
        said = _short(error)
        raise StorageError(said.replace(secret, "***") if secret else said) from None
