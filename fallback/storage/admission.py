"""The admission gate (FALLBACK_ADMIT_RATE): one row every worker and instance shares, and the rate's history.

Every change is one UPDATE that re-bases the mark in the same statement (the formula of fallback.core.admission,
written in SQL both databases accept), so two instances never see a half-done change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fallback.core.admission import BURST_SECONDS, Gate
from fallback.core.clock import iso
from fallback.storage.base import Connection, Database
from fallback.storage.events import record_event

# served(now), from the row's old values: the mark grown at the rate since `mark_at`, capped at the last reserved
# place plus the burst; a paused gate (rate 0) stays where it is. CASE rather than MIN/MAX: PostgreSQL spells
# them LEAST/GREATEST.
_GROWN = "mark_place + rate * (CASE WHEN :now > mark_at THEN :now - mark_at ELSE 0 END)"
_CAP = f"next_place + (CASE WHEN rate * {BURST_SECONDS} > 1 THEN rate * {BURST_SECONDS} ELSE 1 END)"
SERVED = f"(CASE WHEN rate <= 0 THEN mark_place WHEN {_GROWN} < {_CAP} THEN {_GROWN} ELSE {_CAP} END)"
_REBASE = f"mark_place = {SERVED}, mark_at = (CASE WHEN :now > mark_at THEN :now ELSE mark_at END)"
_COLUMNS = "next_place, mark_place, mark_at, rate, send_at"
_RETURNING = f"RETURNING {_COLUMNS}"
_FROM_NOW = "(CASE WHEN send_at > :now THEN send_at ELSE :now END)"
_STEP = "(CASE WHEN rate > 0 THEN 1.0 / rate ELSE 0 END)"
# One step of the send-on schedule (fallback.core.admission.schedule_step), from max(send_at, now).
_BOOK = f"send_at = {_FROM_NOW} + {_STEP}"
# A reserved block's places that the mark has passed already go on at once, as their visitors come: they are
# counted on the schedule with the reservation (no write of their own), so that visitors booked after them wait.
_PASSED = (
    f"(CASE WHEN {SERVED} <= next_place THEN 0 WHEN {SERVED} >= next_place + :count THEN :count"
    f" ELSE {SERVED} - next_place END)"
)
_COUNT_PASSED = f"send_at = {_FROM_NOW} + {_PASSED} * {_STEP}"


def _gate(row: Sequence[Any]) -> Gate:
    return Gate(int(row[0]), float(row[1]), float(row[2]), float(row[3]), float(row[4]))


class AdmissionStore:
    """Reads and moves the shared gate; the one row exists from the migration on (rate 0: admission unset)."""

    def __init__(self, db: Database):
        self.db = db

    def read(self) -> Gate:
        """The gate as stored."""
        return _gate(self.db.read(f"SELECT {_COLUMNS} FROM admission WHERE id = 1")[0])

    def reserve(self, count: int, now: float) -> tuple[int, Gate]:
        """Reserve `count` consecutive places at `now` in one statement; the first of them and the gate after.
        Those the mark has passed already are counted on the send-on schedule in the same statement.

        Not synced to disk: after a power cut the places handed out last may be handed out again, which costs
        a few visitors their order, never a lead; visitors' requests do not wait for the disk.
        """
        with self.db.write(durable=False) as conn:
            row = conn.execute(
                f"UPDATE admission SET {_REBASE}, {_COUNT_PASSED}, next_place = next_place + :count WHERE id = 1 "
                + _RETURNING,
                {"now": now, "count": count},
            ).fetchall()[0]
        gate = _gate(row)
        return gate.next_place - count, gate

    def book(self, now: float) -> Gate:
        """Book one visitor whose turn has come on the send-on schedule at `now`; the gate after (see
        fallback.core.admission.send_time). Not synced to disk, like a reservation."""
        with self.db.write(durable=False) as conn:
            row = conn.execute(f"UPDATE admission SET {_BOOK} WHERE id = 1 {_RETURNING}", {"now": now}).fetchall()[0]
        return _gate(row)

    def set_rate(self, rate: float, now: float) -> Gate:
        """Put `rate` in force from `now` (0 pauses the gate), the mark re-based first; the gate after."""
        with self.db.write() as conn:
            return self._set_rate(conn, rate, now)

    def _set_rate(self, conn: Connection, rate: float, now: float) -> Gate:
        row = conn.execute(
            f"UPDATE admission SET {_REBASE}, rate = :rate WHERE id = 1 {_RETURNING}", {"now": now, "rate": rate}
        ).fetchall()[0]
        return _gate(row)

    def configure(self, ceiling: float, now: float, paused: bool) -> Gate:
        """At start-up: keep the rate in force under `ceiling` (the ceiling itself when unset); 0 while `paused`."""
        with self.db.write() as conn:
            stored = _gate(conn.execute(f"SELECT {_COLUMNS} FROM admission WHERE id = 1").fetchall()[0])
            rate = 0.0 if paused else (min(stored.rate, ceiling) if stored.rate > 0 else ceiling)
            return self._set_rate(conn, rate, now)

    def mark_holding(self, holding: bool, waiting: int, rate: float, at: datetime) -> bool:
        """Record whether admission holds visitors back; when that changed, queue its webhook too. True if it did."""
        with self.db.write() as conn:
            changed = conn.execute(
                "UPDATE admission SET holding = ? WHERE id = 1 AND holding <> ?", (int(holding), int(holding))
            ).rowcount
            if changed:
                kind = "admission.started" if holding else "admission.stopped"
                record_event(conn, iso(at), kind, {"rate": rate, "waiting": waiting})
        return bool(changed)

    def holding(self) -> bool:
        """Whether admission held visitors back at the checker's last look."""
        return bool(self.db.read("SELECT holding FROM admission WHERE id = 1")[0][0])

    def record(self, at: datetime, rate: float, waiting: int) -> None:
        """Keep one sample of the rate in force and the queue, for the dashboard's chart."""
        with self.db.write() as conn:
            conn.execute("INSERT INTO admission_samples (at, rate, waiting) VALUES (?, ?, ?)", (iso(at), rate, waiting))

    def samples(self, since: datetime) -> list[tuple[str, float, int]]:
        """The samples taken since `since`, oldest first: (ISO time, rate, waiting)."""
        rows = self.db.read("SELECT at, rate, waiting FROM admission_samples WHERE at >= ? ORDER BY at", (iso(since),))
        return [(row[0], float(row[1]), int(row[2])) for row in rows]

    def prune(self, older_than: datetime) -> int:
        """Drop samples older than `older_than`; returns how many."""
        with self.db.write() as conn:
            return int(conn.execute("DELETE FROM admission_samples WHERE at < ?", (iso(older_than),)).rowcount)
