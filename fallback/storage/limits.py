"""Rate limits: one fixed-window counter per client, shared by every process on the database."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import datetime

from fallback.storage.base import Connection, Database


@dataclasses.dataclass(frozen=True)
class RateCheck:
    """At most `limit` attempts per `seconds` for the client `key` (a keyed hash of its address)."""

    key: str
    limit: int
    seconds: int


def window_start(rate: RateCheck, moment: float) -> int:
    """The start of the fixed window `moment` falls in (aligned, so longer windows end with shorter ones)."""
    return int(moment // rate.seconds * rate.seconds)


def give_back_attempt(conn: Connection, rate: RateCheck, now: datetime) -> None:
    """Take back one attempt counted at `now` by `count_attempt`, inside the caller's transaction."""
    conn.execute(
        "UPDATE rate_limits SET count = count - 1 WHERE key = ? AND window_start = ? AND count > 0",
        (rate.key, window_start(rate, now.timestamp())),
    )


def count_attempt(conn: Connection, rate: RateCheck, now: datetime) -> float | None:
    """Count one attempt inside the caller's transaction; seconds to wait if over the limit, else None."""
    moment = now.timestamp()
    window = window_start(rate, moment)
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
    """Counters outside a submission (log-ins), and their housekeeping; a submission counts its own (LeadStore)."""

    def __init__(self, db: Database):
        self.db = db

    def take(self, rates: Sequence[RateCheck], now: datetime) -> tuple[RateCheck, float] | None:
        """Count one attempt against each of `rates`; the first one over and its wait (the others then keep nothing)."""
        with self.db.write() as conn:
            for index, rate in enumerate(rates):
                wait = count_attempt(conn, rate, now)
                if wait is not None:
                    for earlier in rates[:index]:
                        give_back_attempt(conn, earlier, now)
                    return rate, wait
        return None

    def spent(self, rates: Sequence[RateCheck], now: datetime) -> tuple[RateCheck, float] | None:
        """The first of `rates` whose attempts in the current window reached its limit, and the wait; counts nothing."""
        if not rates:
            return None
        keys = ", ".join("?" for _ in rates)
        counts = {
            (row[0], row[1]): row[2]
            for row in self.db.read(
                f"SELECT key, window_start, count FROM rate_limits WHERE key IN ({keys})", [r.key for r in rates]
            )
        }
        moment = now.timestamp()
        for rate in rates:
            start = window_start(rate, moment)
            if counts.get((rate.key, start), 0) >= rate.limit:
                return rate, max(1.0, math.ceil(start + rate.seconds - moment))
        return None

    def prune(self, older_than: datetime) -> int:
        """Drop counters whose window started before `older_than`; returns how many."""
        with self.db.write() as conn:
            return int(
                conn.execute("DELETE FROM rate_limits WHERE window_start < ?", (int(older_than.timestamp()),)).rowcount
            )
