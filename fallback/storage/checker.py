"""The checker's row (lease and heartbeat) and its probe results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from fallback.core.clock import iso, parse_iso
from fallback.storage.base import Database
from fallback.storage.records import CheckerState, StoredProbe, from_row


class CheckerStore:
    """What the checker writes besides flips; one checker per database, by a lease in the checker row.

    This lease is SQLite's way: a holder that dies is replaced once its lease has lapsed. PostgreSQL
    supplies its own subclass (postgres_checker.py), where a lock held by the checker's session decides.
    """

    def __init__(self, db: Database):
        self.db = db

    def claim(self, owner: str, lease_seconds: float) -> bool:
        """Take or renew the checker lease; True while `owner` holds it (one checker per database)."""
        now = self.db.clock()
        held = self.db.read("SELECT owner, lease_until FROM checker WHERE id = 1")[0]
        if held["owner"] not in (None, owner) and held["lease_until"] and held["lease_until"] >= iso(now):
            return False  # another's lease holds: a read, so checkers looking for a free one often write nothing
        with self.db.write() as conn:
            return bool(
                conn.execute(
                    "UPDATE checker SET owner = ?, lease_until = ? "
                    "WHERE id = 1 AND (owner IS NULL OR owner = ? OR lease_until IS NULL OR lease_until < ?)",
                    (owner, iso(now + timedelta(seconds=lease_seconds)), owner, iso(now)),
                ).rowcount
            )

    def release(self, owner: str) -> None:
        """Give the lease up, so another process takes over at once."""
        with self.db.write() as conn:
            conn.execute("UPDATE checker SET lease_until = NULL WHERE id = 1 AND owner = ?", (owner,))

    def close(self) -> None:
        """Release what the lease holds besides the database's connections: nothing, for a lease in a row."""

    def record_round(
        self, owner: str, probes: Sequence[Mapping[str, object]], network_doubt: bool, note: str | None
    ) -> None:
        """Store one round's probe results and the heartbeat of the checker that ran it."""
        now = iso(self.db.clock())
        with self.db.write() as conn:
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
        with self.db.write() as conn:
            return int(conn.execute("DELETE FROM probes WHERE at < ?", (iso(older_than),)).rowcount)

    def read(self) -> CheckerState:
        """Who holds the checker lease, its last heartbeat, and whether it doubts its own network."""
        row = self.db.read("SELECT owner, lease_until, heartbeat_at, network_doubt, note FROM checker WHERE id = 1")[0]
        return from_row(
            CheckerState,
            row,
            heartbeat_at=parse_iso(row["heartbeat_at"]),
            lease_until=parse_iso(row["lease_until"]),
            network_doubt=bool(row["network_doubt"]),
        )

    def recent_probes(self, limit: int = 60) -> list[StoredProbe]:
        """The latest probe results, newest first."""
        rows = self.db.read("SELECT * FROM probes ORDER BY id DESC LIMIT ?", (limit,))
        return [from_row(StoredProbe, row, ok=bool(row["ok"]), control=bool(row["control"])) for row in rows]
