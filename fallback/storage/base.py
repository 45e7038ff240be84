"""What both backends share: the error type, and the connection layer the stores are written against."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

BUSY_TIMEOUT_SECONDS = 10.0

Params = Sequence[Any] | Mapping[str, Any]


# Both backends keep their schema's version in `meta`, written with the same statement.
READ_SCHEMA_VERSION = "SELECT value FROM meta WHERE key = 'schema_version'"
WRITE_SCHEMA_VERSION = (
    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
)


class StorageError(RuntimeError):
    """The database cannot be reached or written."""


class Connection(Protocol):
    """A connection inside a transaction: sqlite3's, or the PostgreSQL backend's wrapper of psycopg's."""

    def execute(self, sql: str, params: Any = (), /) -> Any:
        """Run one statement; a cursor (rowcount, fetchall)."""
        ...

    def executemany(self, sql: str, rows: Iterable[Any], /) -> Any:
        """Run one statement for each of `rows`."""
        ...


class Database(Protocol):
    """One database's connections, as each backend supplies them; the stores run their SQL through it.

    The stores write their SQL once, with `?` and `:name` placeholders and syntax both databases accept.
    """

    path: str
    clock: Callable[[], datetime]
    # Appended to a SELECT whose rows a transaction is about to claim: SQLite's writers are
    # serialised already, PostgreSQL needs the rows locked (and skipped by other claimers).
    lock_rows: str
    # Run first in a transaction, it waits until no other transaction is writing {table}: on PostgreSQL,
    # ids are drawn before commit, so a lower id may still be in flight; SQLite's writers are serialised.
    wait_for_writers: str

    def write(self) -> AbstractContextManager[Connection]:
        """A transaction that commits on exit, durably."""
        ...

    def read(self, sql: str, params: Params = ()) -> list[Any]:
        """The rows of one query (rows answer `row["name"]` and `row[0]`)."""
        ...

    def stream(self, sql: str, params: Params, batch: int) -> Iterator[dict[str, Any]]:
        """The rows of a long query, a batch at a time, without holding them all in memory."""
        ...

    def compact(self) -> None:
        """Reclaim the space of erased rows, so that nothing erased can be read back from the files."""
        ...

    def migrate(self) -> int:
        """Create or bring the schema up to date; returns the schema version."""
        ...

    def schema_version(self) -> int:
        """How many migrations the database has had (0 for a new one)."""
        ...

    def close(self) -> None:
        """Release every connection this object holds; it is unusable afterwards."""
        ...


# Every table whose rows name a lead (a `lead_id` column): erasure deletes their rows with the lead, and PostgreSQL's
# compaction vacuums them. A new such table is added here (tests/test_outbox.py fails until it is).
LEAD_LINKED_TABLES = ("submissions", "events", "outbox")
