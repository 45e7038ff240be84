"""Rate limits: one fixed-window counter per client, shared by every process on the database."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime

from .base import Connection, Database


@dataclasses.dataclass(frozen=True)
class RateCheck:
    """At most `limit` attempts per `seconds` for the client `key` (a keyed hash of its address)."""

    key: str
    limit: int
    seconds: int


def count_attempt(conn: Connection, rate: RateCheck, now: datetime) -> float | None:
    """Count one attempt inside the caller's transaction; seconds to wait if over the limit, else None."""
    moment = now.timestamp()
    window = int(moment // rate.seconds * rate.seconds)
    count = conn.execute(
        "INSERT INTO rate_limits (key, window_start, count) VALUES (?, ?, 1) "
        "ON CONFLICT(key) DO UPDATE SET "
        "count = CASE WHEN rate_limits.window_start = excluded.window_start THEN rate_limits.count + 1 ELSE 1 END, "
        "window_start = excluded.window_start RETURNING count",
        (rate.key, window),
    ).fetchall()[0][0]
    if count <= rate.limit:
        return None
    return max(1.0, math.ceil(window + rate.seconds - moment))


class LimitStore:
    """Housekeeping of the counters (they are counted with each submission: see LeadStore.submit)."""

    def __init__(self, db: Database):
        self.db = db

    def prune(self, older_than: datetime) -> int:
        """Drop counters whose window started before `older_than`; returns how many."""
        with self.db.write() as conn:
            return int(
                conn.execute("DELETE FROM rate_limits WHERE window_start < ?", (int(older_than.timestamp()),)).rowcount
            )
