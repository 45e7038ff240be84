"""The PostgreSQL backend's connections: a pool shared by a worker's threads, the same SQL as SQLite.

The stores write their SQL once, with `?` and `:name` placeholders and syntax both databases
accept (ON CONFLICT, RETURNING, CASE); this layer only translates the placeholders
(postgres_connection.py). The schema is PostgreSQL's own DDL, step for step with SQLite's (postgres_migrations.py).

A server that goes away (a restart, a fail-over) must neither hang the app nor need a restart of
it: a pooled connection the server hung up on is replaced before anyone uses it, and while the
server cannot be reached, operations fail within a second with a StorageError instead of waiting
for the whole pool timeout; the pool keeps trying to reconnect, in the background and on demand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from fallback.core.clock import utcnow
from fallback.storage.base import (
    BUSY_TIMEOUT_SECONDS,
    LEAD_LINKED_TABLES,
    READ_SCHEMA_VERSION,
    WRITE_SCHEMA_VERSION,
    Params,
    StorageError,
)
from fallback.storage.postgres_connection import (
    PgConnection,
    Reachability,
    Row,
    alive,
    connection_class,
    driver_params,
    row_factory,
    translate,
)
from fallback.storage.postgres_migrations import PG_MIGRATIONS
from fallback.storage.postgres_url import CONNECT_TIMEOUT_SECONDS, password_of, safe_url, short_error

log = logging.getLogger("fallback.storage")

# Serialises concurrent migrations of one database (any constant shared by every instance).
MIGRATION_LOCK = 4_815_162_342
# Connections per process besides the request threads: the checker, the notifier, an export.
SPARE_CONNECTIONS = 4
# How long an operation waits for a connection while the server is known to be unreachable.
UNREACHABLE_WAIT_SECONDS = 0.5
# How long one chain of reconnection attempts lasts (1 s, then 2 s apart) before the next
# operation starts a new one: a server back after a long outage is found again within seconds.
RECONNECT_SECONDS = 5.0


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
        self._secret = password_of(path)
        self.reachability = Reachability()
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "row_factory": row_factory,
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
                f"cannot connect to the database {safe_url(path)}: {self._scrub(short_error(error))}"
            ) from None
        self.pool = ConnectionPool(
            path,
            min_size=1,
            max_size=threads + SPARE_CONNECTIONS,
            timeout=BUSY_TIMEOUT_SECONDS,
            open=False,
            kwargs=self._kwargs,
            connection_class=connection_class(psycopg, self.reachability, self._scrub),
            reconnect_timeout=RECONNECT_SECONDS,
            name="fallback",
        )
        try:
            self.pool.open(wait=True, timeout=BUSY_TIMEOUT_SECONDS)
        except Exception as error:  # noqa: BLE001 - reported as a StorageError naming the URL
            self.pool.close()
            raise StorageError(
                f"cannot connect to the database {safe_url(path)}: {self._scrub(short_error(error))}"
            ) from None

    def _scrub(self, text: str) -> str:
        """`text` without the database password, should a driver message ever repeat it."""
        return text.replace(self._secret, "***") if self._secret else text

    def describe(self, error: BaseException) -> str:
        """A driver error in one short line, without the database password."""
        return self._scrub(short_error(error))

    def session(self) -> Any:
        """A psycopg connection of its own, outside the pool (autocommit), for a lock held across transactions.

        The caller closes it; it raises `driver_error`, not StorageError.
        """
        return self._psycopg.connect(self.path, **self._kwargs)

    def close(self) -> None:
        """Close the pool: every pooled connection; this object is unusable afterwards."""
        self.pool.close()

    # -- connections -------------------------------------------------------

    def _checkout(self) -> Any:
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
                raise StorageError(f"the database is unavailable: {short_error(error)}") from error
            if alive(conn, self._check):
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
            raise StorageError(f"the database {what} failed: {self._scrub(short_error(error))}") from error
        finally:
            self.pool.putconn(conn)

    @contextmanager
    def write(self, durable: bool = True) -> Iterator[PgConnection]:
        """A transaction on a pooled connection, committed on exit (`durable=False`: without waiting for the WAL
        to reach the disk, for this transaction only)."""
        with self._connection("write") as conn, conn.transaction():
            if not durable:
                conn.execute("SET LOCAL synchronous_commit TO OFF")
            yield PgConnection(conn)

    def read(self, sql: str, params: Params = ()) -> list[Row]:
        """The rows of one query, on a pooled connection."""
        with self._connection("read") as conn:
            return conn.execute(translate(sql), driver_params(params)).fetchall()

    def stream(self, sql: str, params: Params, batch: int) -> Iterator[dict[str, Any]]:
        """The rows of a long query, `batch` at a time, through a server-side cursor."""
        with self._connection("read") as conn, conn.transaction():
            # A server-side cursor: the export's memory does not grow with the rows. Plain tuples
            # zipped into dicts, as on SQLite: cheaper than rows that answer by name and position.
            with conn.cursor(name="fallback_export", row_factory=self._psycopg.rows.tuple_row) as cursor:
                cursor.execute(translate(sql), driver_params(params))
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


def _version(rows: list[Any]) -> int:
    return int(rows[0][0]) if rows else 0
