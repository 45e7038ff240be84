"""The checker lease and heartbeat, probe results, and the notification queue."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from ..state import iso, parse_iso
from .base import Database

log = logging.getLogger("fallback.storage")

# The advisory lock whose holder is the one checker of all instances sharing a PostgreSQL database.
CHECKER_LOCK = 4_815_162_343


class CheckerStore(Database):
    """What the checker writes besides flips."""

    def claim_checker(self, owner: str, lease_seconds: float) -> bool:
        """Take or renew the checker lease; True while `owner` holds it (one checker per database)."""
        now = self.clock()
        with self.write() as conn:
            return bool(conn.execute(
                "UPDATE checker SET owner = ?, lease_until = ? "
                "WHERE id = 1 AND (owner IS NULL OR owner = ? OR lease_until IS NULL OR lease_until < ?)",
                (owner, iso(now + timedelta(seconds=lease_seconds)), owner, iso(now)),
            ).rowcount)

    def release_checker(self, owner: str) -> None:
        """Give the lease up, so another process takes over at once."""
        with self.write() as conn:
            conn.execute("UPDATE checker SET lease_until = NULL WHERE id = 1 AND owner = ?", (owner,))

    def record_round(self, owner: str, probes: list[dict], network_doubt: bool, note: str | None) -> None:
        """Store one round's probe results and the heartbeat of the checker that ran it."""
        now = iso(self.clock())
        with self.write() as conn:
            conn.executemany(
                "INSERT INTO probes (at, url, ok, latency_ms, status, reason, control) "
                "VALUES (:at, :url, :ok, :latency_ms, :status, :reason, :control)",
                [{"at": now, **probe} for probe in probes],
            )
            conn.execute(
                "UPDATE checker SET heartbeat_at = ?, network_doubt = ?, note = ? WHERE id = 1 AND owner = ?",
                (now, int(network_doubt), note, owner),
            )

    def prune_probes(self, older_than: datetime) -> int:
        """Erase probe results older than `older_than`; returns how many."""
        with self.write() as conn:
            return conn.execute("DELETE FROM probes WHERE at < ?", (iso(older_than),)).rowcount

    def checker(self) -> dict:
        """Who holds the checker lease, its last heartbeat, and whether it doubts its own network."""
        row = dict(self.read(
            "SELECT owner, lease_until, heartbeat_at, network_doubt, note FROM checker WHERE id = 1")[0])
        row["heartbeat_at"] = parse_iso(row["heartbeat_at"])
        row["lease_until"] = parse_iso(row["lease_until"])
        row["network_doubt"] = bool(row["network_doubt"])
        return row

    def recent_probes(self, limit: int = 60) -> list[dict]:
        """The latest probe results, newest first."""
        return [dict(row) for row in self.read("SELECT * FROM probes ORDER BY id DESC LIMIT ?", (limit,))]

    def claim_events(self, hold_seconds: float, limit: int = 20) -> list[dict]:
        """Events due for announcement, each claimed for `hold_seconds` so that no other process sends it too."""
        now = self.clock()
        claimed = []
        with self.write() as conn:
            rows = conn.execute(
                "SELECT * FROM events WHERE notified_at IS NULL AND gave_up_at IS NULL "
                "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT ?" + self.lock_rows,
                (iso(now), limit),
            ).fetchall()
            for row in rows:
                conn.execute("UPDATE events SET next_attempt_at = ? WHERE id = ?",
                             (iso(now + timedelta(seconds=hold_seconds)), row["id"]))
                claimed.append(dict(row))
        return claimed

    def event_sent(self, event_id: int) -> None:
        """Mark an event announced."""
        with self.write() as conn:
            conn.execute("UPDATE events SET notified_at = ?, attempts = attempts + 1, last_error = NULL "
                         "WHERE id = ?", (iso(self.clock()), event_id))

    def event_failed(self, event_id: int, error: str, retry_in: float | None) -> None:
        """Record a failed announcement; without `retry_in` it is given up (kept in the history)."""
        now = self.clock()
        with self.write() as conn:
            conn.execute(
                "UPDATE events SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, gave_up_at = ? "
                "WHERE id = ?",
                (error[:500], iso(now + timedelta(seconds=retry_in or 0)),
                 None if retry_in is not None else iso(now), event_id),
            )

    def events(self, limit: int = 20) -> list[dict]:
        """The latest flips and mode changes, newest first."""
        return [dict(row) for row in self.read("SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,))]


class SessionLockedCheckerStore(CheckerStore):
    """PostgreSQL: the checker is whoever holds an advisory lock in a session of its own.

    The server ends the lock with the session, so when the holding instance dies (or the server
    restarts) another takes over at its next try, without waiting for a lease to lapse. The
    holder still renews its lease in the checker row at every round. A holder whose process
    lives but whose checker stopped renewing it (hung) is found by the others: one that has
    watched the row stay the same for a whole lease, by its own clock (instances' clocks may
    disagree), ends that holder's lock session and takes over at its following try.
    """

    _silent: tuple[tuple, datetime] | None = None  # the checker row as last seen by a non-holder, and since when

    def claim_checker(self, owner: str, lease_seconds: float) -> bool:
        """Take or keep the checker lock; True while `owner` holds it, and then the row names it."""
        if not self._hold_lock(CHECKER_LOCK, owner):
            self._watch_holder(lease_seconds)
            return False
        self._silent = None
        with self.write() as conn:
            conn.execute("UPDATE checker SET owner = ?, lease_until = ? WHERE id = 1",
                         (owner, iso(self.clock() + timedelta(seconds=lease_seconds))))
        return True

    def release_checker(self, owner: str) -> None:
        """Let go of the lock, so another instance takes over at its next try."""
        self._end_session(owner)
        super().release_checker(owner)

    def _watch_holder(self, lease_seconds: float) -> None:
        row = self.read("SELECT owner, lease_until FROM checker WHERE id = 1")[0]
        seen, now = (row["owner"], row["lease_until"]), self.clock()
        if self._silent is None or self._silent[0] != seen:
            self._silent = (seen, now)  # a live holder changes the row every round
            return
        if now - self._silent[1] < timedelta(seconds=lease_seconds):
            return
        self._silent = None
        # Only the lock's own session is ended (never one serving requests), only in this database,
        # and only if the row is still the one watched: a new holder would have renewed it.
        with self.write() as conn:
            ended = conn.execute(
                "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN checker c ON c.id = 1 "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = ?::oid AND l.objid = ?::oid "
                "AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND c.owner IS NOT DISTINCT FROM ? AND c.lease_until IS NOT DISTINCT FROM ?",
                (CHECKER_LOCK >> 32, CHECKER_LOCK & 0xFFFFFFFF, *seen),
            ).fetchall()
        if any(row[0] for row in ended):
            log.warning("the checker (%s) renewed nothing for %g s while keeping its lock: its lock session "
                        "was ended", seen[0], lease_seconds)
