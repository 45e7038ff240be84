"""The vantage points' latest verdicts (FALLBACK_QUORUM): one row per name, the latest report wins."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from fallback.core.clock import iso, parse_iso
from fallback.storage.base import Database
from fallback.storage.records import from_row

COLUMNS = "name, kind, state, ok, reason, observed_at, received_at, first_seen_at"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What one vantage point (an instance or a probe agent) last said of the main site."""

    name: str
    kind: str  # "instance" or "agent"
    state: str  # "up", "down", or "unknown" (not enough rounds yet, or its own network in doubt)
    ok: bool  # whether its latest round passed, before its fall/rise hysteresis
    reason: str | None
    observed_at: datetime  # when its round ended, by its clock
    received_at: datetime  # when it reached the database, by ours: freshness is judged by this
    first_seen_at: datetime


class VerdictStore:
    """Records and reads the vantage points' verdicts; counted per name, so a restarted agent replaces its own."""

    def __init__(self, db: Database):
        self.db = db

    def record(
        self, name: str, kind: str, state: str, ok: bool, reason: str | None, observed_at: datetime
    ) -> Verdict | None:
        """Store `name`'s latest verdict in place of its previous one; the stored verdict, or None if refused.

        An agent's report never replaces an instance's verdict (None then); an instance takes its name back
        from anyone. Checked in the statement itself, so no report slips in between a check and the write.
        """
        now = iso(self.db.clock())
        with self.db.write() as conn:
            rows = conn.execute(
                "INSERT INTO verdicts (name, kind, state, ok, reason, observed_at, received_at, first_seen_at) "
                "VALUES (:name, :kind, :state, :ok, :reason, :observed_at, :now, :now) "
                "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, state = excluded.state, ok = excluded.ok, "
                "reason = excluded.reason, observed_at = excluded.observed_at, received_at = excluded.received_at "
                "WHERE verdicts.kind = excluded.kind OR excluded.kind = 'instance' "
                f"RETURNING {COLUMNS}",
                {
                    "name": name,
                    "kind": kind,
                    "state": state,
                    "ok": int(ok),
                    "reason": reason,
                    "observed_at": iso(observed_at),
                    "now": now,
                },
            ).fetchall()
        return _verdict(rows[0]) if rows else None

    def latest(self) -> list[Verdict]:
        """Every vantage point that ever reported, with its latest verdict, by name."""
        return [_verdict(row) for row in self.db.read(f"SELECT {COLUMNS} FROM verdicts ORDER BY name")]

    def prune(self, older_than: datetime) -> int:
        """Drop the vantage points not heard from since `older_than` (a retired agent, a renamed host); how many."""
        with self.db.write() as conn:
            return int(conn.execute("DELETE FROM verdicts WHERE received_at < ?", (iso(older_than),)).rowcount)

    def forget(self, name: str) -> bool:
        """Drop a vantage point that will not report again; True if it was known."""
        with self.db.write() as conn:
            return bool(conn.execute("DELETE FROM verdicts WHERE name = ?", (name,)).rowcount)


def _verdict(row: Any) -> Verdict:
    """A row of COLUMNS, as a Verdict."""
    times = {name: _time(row[name]) for name in ("observed_at", "received_at", "first_seen_at")}
    return from_row(Verdict, row, ok=bool(row["ok"]), **times)


def _time(text: str) -> datetime:
    moment = parse_iso(text)
    assert moment is not None  # NOT NULL columns
    return moment
