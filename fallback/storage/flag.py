"""The flag, its history, flips and incidents."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from fallback.core.clock import iso, parse_iso
from fallback.core.flag import Flag
from fallback.storage.base import Connection, Database, StorageError
from fallback.storage.events import record_event
from fallback.storage.leads import GENUINE
from fallback.storage.records import Incident, ModeChange, from_row

log = logging.getLogger("fallback.storage")

READ_NOTICE = "SELECT value FROM meta WHERE key = 'notice'"


class FlagStore:
    """Mode (the admin's choice), state (the checker's verdict), and what changed them."""

    def __init__(self, db: Database):
        self.db = db
        self._last: Flag | None = None  # the last flag read, served while the database cannot be read
        self._stale = False  # whether the database could not be read last time (logged once)

    def read(self) -> Flag:
        """The persisted flag; while the database cannot be read, the last one this process read.

        Visitors keep getting what they got (the page or the redirect) through a database outage,
        instead of an error; a process that never read the flag gets the StorageError.
        """
        try:
            # The notice rides with the flag, so the page is rendered again once per change of either.
            row = self.db.read(f"SELECT flag.*, ({READ_NOTICE}) AS notice FROM flag WHERE id = 1")[0]
        except StorageError as error:
            if self._last is None:
                raise
            if not self._stale:
                self._stale = True
                log.error("the flag cannot be read, the last one read is used until it can: %s", error)
            return self._last
        if self._stale:
            self._stale = False
            log.warning("the flag can be read again")
        flag = self._last = Flag(
            mode=row["mode"],
            mode_until=parse_iso(row["mode_until"]),
            mode_reason=row["mode_reason"],
            mode_by=row["mode_by"],
            mode_changed_at=parse_iso(row["mode_changed_at"]),
            state=row["state"],
            state_since=parse_iso(row["state_since"]),
            state_reason=row["state_reason"],
            version=row["version"],
            notice=row["notice"],
        )
        return flag

    def set_notice(self, text: str | None) -> Flag:
        """Show `text` on the page as the admin's public notice, or no notice (None); the flag as it is now."""
        with self.db.write() as conn:
            if text:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('notice', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (text,),
                )
            else:
                conn.execute("DELETE FROM meta WHERE key = 'notice'")
            # Every worker renders its page again once it sees the new version.
            conn.execute("UPDATE flag SET version = version + 1 WHERE id = 1")
        return self.read()

    def set_mode(
        self, mode: str, until: datetime | None = None, reason: str | None = None, by: str | None = None
    ) -> Flag:
        """Force the page on (`down`), off (`up`), or hand back to the checker (`auto`); recorded."""
        if mode not in ("auto", "up", "down"):
            raise ValueError(f"unknown mode {mode!r}")
        now = iso(self.db.clock())
        with self.db.write() as conn:
            self._record_mode(conn, now, mode, until, reason, by, changed_at=now, history_by=by)
        return self.read()

    def restore_mode(self, previous: Flag, ours: Flag) -> Flag | None:
        """Put back the mode `previous` had (mode, expiry, reason, who, since when) over the mode `ours` set.

        Only while the flag still holds `ours` (whatever the checker flipped meanwhile), or the expiry that ended
        it: a mode someone else set meanwhile is theirs to keep. Returns the flag restored, or None when left alone.
        """
        now = iso(self.db.clock())
        until = previous.mode_until if previous.mode != "auto" else None
        # Matched by the mode's own fields, not the version: the checker's flips bump that too. In the UPDATE's
        # own WHERE, not a SELECT before it: PostgreSQL re-reads a row another transaction changed meanwhile there.
        if_ours = (
            "(mode = ? AND mode_by = ? AND mode_changed_at = ?) "
            "OR (mode = 'auto' AND mode_by = 'expiry' AND mode_changed_at = ?)",
            (
                ours.mode,
                ours.mode_by,
                iso(ours.mode_changed_at) if ours.mode_changed_at else None,
                iso(ours.mode_until) if ours.mode_until else None,
            ),
        )
        changed_at = iso(previous.mode_changed_at) if previous.mode_changed_at else None
        # The history says who put it back; the flag says who set it, as it did.
        restorer = f"{ours.mode_by or 'unknown'}, restoring the mode set by {previous.mode_by or 'nobody'}"
        with self.db.write() as conn:
            restored = self._record_mode(
                conn, now, previous.mode, until, previous.mode_reason, previous.mode_by, changed_at, restorer, if_ours
            )
        return self.read() if restored else None

    def _record_mode(
        self,
        conn: Connection,
        now: str,
        mode: str,
        until: datetime | None,
        reason: str | None,
        by: str | None,
        changed_at: str | None,
        history_by: str | None,
        only_while: tuple[str, tuple] = ("", ()),
    ) -> bool:
        """Write a mode to the flag and record its event (the mode history), in the caller's transaction;
        with `only_while` (a condition on the flag and its parameters), only if the flag meets it. True if written."""
        until_text = iso(until) if until and mode != "auto" else None
        condition, condition_params = only_while
        written = conn.execute(
            "UPDATE flag SET mode = ?, mode_until = ?, mode_reason = ?, mode_by = ?, "
            "mode_changed_at = ?, version = version + 1 WHERE id = 1" + (f" AND ({condition})" if condition else ""),
            (mode, until_text, reason, by, changed_at, *condition_params),
        ).rowcount
        if not written:
            return False
        record_event(conn, now, "mode.changed", {"mode": mode, "until": until_text, "reason": reason, "by": history_by})
        return True

    def expire_mode(self) -> bool:
        """Hand an expired forced mode back to the checker, once, whoever calls it; True if this call did."""
        now = iso(self.db.clock())
        with self.db.write() as conn:
            changed = conn.execute(
                "UPDATE flag SET mode = 'auto', mode_until = NULL, mode_reason = NULL, mode_by = 'expiry', "
                "mode_changed_at = mode_until, version = version + 1 "
                "WHERE id = 1 AND mode != 'auto' AND mode_until IS NOT NULL AND mode_until <= ?",
                (now,),
            ).rowcount
            if changed:
                record_event(conn, now, "mode.changed", {"mode": "auto", "until": None, "reason": None, "by": "expiry"})
        return bool(changed)

    def flip(self, expected: str, new: str, reason: str, vantage_points: Sequence[str] = ()) -> bool:
        """Change the state from `expected` to `new`, once however many checkers try; opens or closes an incident.

        Under a quorum, `vantage_points` names those that agreed: the incident's events carry them.
        """
        agreed = {"vantage_points": list(vantage_points)} if vantage_points else {}
        now = iso(self.db.clock())
        with self.db.write() as conn:
            changed = conn.execute(
                "UPDATE flag SET state = ?, state_since = ?, state_reason = ?, version = version + 1 "
                "WHERE id = 1 AND state = ?",
                (new, now, reason, expected),
            ).rowcount
            if not changed:
                return False
            if new == "down":
                opened = conn.execute(
                    "INSERT INTO incidents (started_at, reason) VALUES (?, ?) RETURNING id", (now, reason)
                ).fetchall()
                incident = {"incident_id": opened[0][0], "started_at": now, "reason": reason, **agreed}
                record_event(conn, now, "incident.opened", incident)
            else:
                closed = conn.execute(
                    "UPDATE incidents SET ended_at = ?, end_reason = ? WHERE ended_at IS NULL "
                    "RETURNING id, started_at, reason",
                    (now, reason),
                ).fetchall()
                for row in closed:
                    record_event(conn, now, "incident.closed", {**_closed(row, now, reason), **agreed})
        return True

    def incidents(self, limit: int = 20) -> list[Incident]:
        """The latest incidents, newest first, with their duration and the leads captured during each."""
        rows = self.db.read(
            f"SELECT i.*, (SELECT COUNT(*) FROM leads WHERE {GENUINE} AND created_at >= i.started_at "
            "AND (i.ended_at IS NULL OR created_at < i.ended_at)) AS leads "
            "FROM incidents i ORDER BY i.id DESC LIMIT ?",
            (limit,),
        )
        return [from_row(Incident, row, duration_seconds=self._lasted(row)) for row in rows]

    def _lasted(self, incident: Mapping[str, Any]) -> int:
        """An incident's duration in seconds: until now while it is open."""
        end = parse_iso(incident["ended_at"]) or self.db.clock()
        return round((end - datetime.fromisoformat(incident["started_at"])).total_seconds())  # started_at NOT NULL

    def mode_changes(self, limit: int = 20) -> list[ModeChange]:
        """The latest mode changes (their events), newest first: when, the mode, until when, why and who."""
        rows = self.db.read(
            "SELECT id, at, data FROM events WHERE type = 'mode.changed' ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [from_row(ModeChange, {"id": row["id"], "at": row["at"], **json.loads(row["data"])}) for row in rows]


def _closed(incident: Mapping[str, Any], ended_at: str, end_reason: str) -> dict[str, object]:
    """The `incident.closed` event's facts: the incident as opened, and how it ended."""
    return {
        "incident_id": incident["id"],
        "started_at": incident["started_at"],
        "reason": incident["reason"],
        "ended_at": ended_at,
        "end_reason": end_reason,
    }
