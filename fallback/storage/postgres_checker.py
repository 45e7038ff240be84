"""PostgreSQL's checker store: the checker is whoever holds an advisory lock in a session of its own."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from fallback.core.clock import iso
from fallback.storage.base import StorageError
from fallback.storage.checker import CheckerStore
from fallback.storage.postgres import PostgresDatabase

log = logging.getLogger("fallback.storage")

# The advisory lock whose holder is the one checker of all instances sharing a PostgreSQL database.
CHECKER_LOCK = 4_815_162_343


class SessionLockedCheckerStore(CheckerStore):
    """The checker is whoever holds CHECKER_LOCK, in a session (a connection outside the pool) of its own.

    The server ends the lock with the session, so when the holding instance dies (or the server
    restarts) another takes over at its next try, without waiting for a lease to lapse. The
    holder still renews its lease in the checker row at every round. A holder whose process
    lives but whose checker stopped renewing it (hung) is found by the others: one that has
    watched the row stay the same for a whole lease, by its own clock (instances' clocks may
    disagree), ends that holder's lock session and takes over at its following try.
    """

    def __init__(self, db: PostgresDatabase):
        super().__init__(db)
        self.pg = db
        self._sessions: dict[str, Any] = {}  # holder -> its session (a psycopg connection)
        self._locked: set[str] = set()  # holders whose session holds the lock
        self._sessions_lock = threading.Lock()
        self._silent: tuple[tuple, datetime] | None = None  # the row as last seen by a non-holder, and since when

    def claim(self, owner: str, lease_seconds: float) -> bool:
        """Take or keep the checker lock; True while `owner` holds it, and then the row names it."""
        if not self._hold_lock(CHECKER_LOCK, owner):
            self._watch_holder(lease_seconds)
            return False
        self._silent = None
        with self.db.write() as conn:
            conn.execute(
                "UPDATE checker SET owner = ?, lease_until = ? WHERE id = 1",
                (owner, iso(self.db.clock() + timedelta(seconds=lease_seconds))),
            )
        return True

    def release(self, owner: str) -> None:
        """Let go of the lock, so another instance takes over at its next try."""
        self._end_session(owner)
        super().release(owner)

    def close(self) -> None:
        """End every lock session: the server releases the locks they held."""
        for holder in list(self._sessions):
            self._end_session(holder)

    def _hold_lock(self, key: int, holder: str) -> bool:
        """Whether `holder` holds advisory lock `key`, taking it if free; held until its session ends.

        The lock lives as long as the holder's own connection: if this process dies, or the server
        restarts, the server lets go of it and another holder can take it at its next try.
        """
        with self._sessions_lock:
            session = self._sessions.get(holder)
        if session is not None and holder in self._locked:
            try:
                session.execute("SELECT 1")
                return True
            except self.pg.driver_error as error:
                log.warning("lost advisory lock %s with its session: %s", key, self.pg.describe(error))
                self._end_session(holder)
                session = None
        try:
            if session is None:
                session = self.pg.session()
                with self._sessions_lock:
                    self._sessions[holder] = session
            got = session.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
        except self.pg.driver_error as error:
            self._end_session(holder)
            raise StorageError(f"the database lock {key} could not be tried: {self.pg.describe(error)}") from None
        if got:
            with self._sessions_lock:
                self._locked.add(holder)
        return bool(got)

    def _end_session(self, holder: str) -> None:
        """Close `holder`'s lock session: the server releases whatever lock it held."""
        with self._sessions_lock:
            session = self._sessions.pop(holder, None)
            self._locked.discard(holder)
        if session is not None:
            session.close()

    def _watch_holder(self, lease_seconds: float) -> None:
        row = self.db.read("SELECT owner, lease_until FROM checker WHERE id = 1")[0]
        seen, now = (row["owner"], row["lease_until"]), self.db.clock()
        if self._silent is None or self._silent[0] != seen:
            self._silent = (seen, now)  # a live holder changes the row every round
            return
        if now - self._silent[1] < timedelta(seconds=lease_seconds):
            return
        self._silent = None
        # Only the lock's own session is ended (never one serving requests), only in this database,
        # and only if the row is still the one watched: a new holder would have renewed it.
        with self.db.write() as conn:
            ended = conn.execute(
                "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN checker c ON c.id = 1 "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = ?::oid AND l.objid = ?::oid "
                "AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND c.owner IS NOT DISTINCT FROM ? AND c.lease_until IS NOT DISTINCT FROM ?",
                (CHECKER_LOCK >> 32, CHECKER_LOCK & 0xFFFFFFFF, *seen),
            ).fetchall()
        if any(row[0] for row in ended):
            log.warning(
                "the checker (%s) renewed nothing for %g s while keeping its lock: its lock session was ended",
                seen[0],
                lease_seconds,
            )
