"""One psycopg connection as the stores use it: SQLite's placeholders, rows by name and position, and whether the
server still answers (the pool's attempts to connect, an idle connection's socket)."""

from __future__ import annotations

import functools
import logging
import re
import select
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fallback.storage.base import Params
from fallback.storage.postgres_url import short_error

log = logging.getLogger("fallback.storage")

_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)")


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """SQLite's `?` and `:name` placeholders as psycopg's `%s` and `%(name)s` (a literal `%` as `%%`)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%").replace("?", "%s"))


def driver_params(params: Params | None) -> Params:
    """Always a sequence or a mapping, never None: psycopg then reads `%%` as a literal `%`."""
    return params if params else ()


class Row(dict):
    """A row that answers both `row["name"]` and `row[0]`, as sqlite3.Row does."""

    def __init__(self, names: list[str], values: Sequence[Any]):
        super().__init__(zip(names, values))
        self._values = values

    def __getitem__(self, key: str | int) -> Any:
        """By column name, or by position."""
        return self._values[key] if isinstance(key, int) else super().__getitem__(key)


def row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    """psycopg's row factory for Row."""
    names = [column.name for column in cursor.description or ()]
    return lambda values: Row(names, values)


class PgConnection:
    """A psycopg connection speaking the stores' placeholders."""

    def __init__(self, conn: Any):
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> Any:
        """Run one statement; the cursor (rowcount, fetchall)."""
        return self._conn.execute(translate(sql), driver_params(params))

    def executemany(self, sql: str, rows: Iterable[Any]) -> None:
        """Run one statement for each of `rows`."""
        with self._conn.cursor() as cursor:
            cursor.executemany(translate(sql), list(rows))


class Reachability:
    """What the pool's latest attempt to connect said: None while the server answers, else why not."""

    def __init__(self) -> None:
        self.problem: str | None = None
        self._lock = threading.Lock()

    def failed(self, problem: str) -> None:
        """The latest attempt to connect failed, for `problem`: logged once, until the server answers again."""
        with self._lock:
            if self.problem is None:
                log.warning("the database is unreachable: %s", problem)
            self.problem = problem

    def succeeded(self) -> None:
        """The latest attempt to connect succeeded."""
        with self._lock:
            if self.problem is not None:
                log.warning("the database is reachable again")
            self.problem = None


def connection_class(psycopg: Any, reachability: Reachability, scrub: Callable[[str], str]) -> type:
    """psycopg's Connection, telling `reachability` how each attempt to connect went."""

    class Connection(psycopg.Connection):
        @classmethod
        def connect(cls, *args: Any, **kwargs: Any) -> Any:
            try:
                conn = super().connect(*args, **kwargs)
            except psycopg.Error as error:
                reachability.failed(scrub(short_error(error)))
                raise
            reachability.succeeded()
            return conn

    return Connection


def alive(conn: Any, check: Callable[[Any], object]) -> bool:
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
