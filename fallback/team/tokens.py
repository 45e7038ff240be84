"""Bearer tokens and the admin password: read from the request, compared in constant time, guessed only slowly.

One guard (`check_secret`) serves every route that takes a secret: the API, the metrics and the
export tokens (the probe agents post their verdicts to the API), and the admin log-in.

- The secret is compared first, in constant time, with every secret the route accepts.
- A right one spends nothing. It is refused only when its own address has spent its failure budget
  (10 wrong attempts per 15 minutes, IPv6 per /64: fallback.team.logins), so an attacker's guesses
  past that budget learn nothing, right or wrong, and other addresses' failures never lock it out.
- A wrong one is counted against its address's budget and the budget all addresses share, in one
  transaction, and logged with the address. Past either, it gets a 429 saying which.
- The admin password is a person's, and shorter than a token: once the shared budget is spent, it is
  only heard from addresses with no failure of their own in the window (the owner, typing it right),
  so that an attacker's many networks get one guess each, not ten.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import math
from collections.abc import Mapping

from flask import request

from fallback.team.logins import FailureLimits, failure_limits
from fallback.web.runtime import Runtime

log = logging.getLogger("fallback.tokens")


def same_secret(given: str | None, expected: str | None) -> bool:
    """Compare secrets in constant time; nothing matches an unset secret."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer` header, if the request has one."""
    authorization = request.headers.get("Authorization", "")
    return authorization[7:].strip() or None if authorization[:7].lower() == "bearer " else None


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a secret was not taken: 401 (missing or wrong), or 429 with the seconds to wait; `detail` says which."""

    status: int
    detail: str
    retry_after: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Retry-After on a 429."""
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


def check_secret(
    rt: Runtime, given: str | None, accepted: Mapping[str, str | None], what: str, scope: str = "token"
) -> str | Refusal:
    """The name in `accepted` whose secret `given` is, or why it is refused (see the module); `what` names the
    secret in messages and logs ("token", "password"), `scope` the budgets ("token", or "login": the stricter)."""
    # Every accepted secret compared every time (a list, not any() on a generator), each in constant time.
    matches = [name for name, expected in accepted.items() if same_secret(given, expected)]
    address = request.remote_addr
    limits, now = failure_limits(rt.settings, rt.secret_key, address, scope), rt.storage.clock()
    if matches:
        spent = rt.storage.limits.spent(limits.own, now)
        if spent is None and scope == "login" and rt.storage.limits.spent(limits.shared, now):
            spent = rt.storage.limits.spent(_failed_before(limits), now)
        if spent is None:
            return matches[0]
        log.warning("right %s from %s refused: this address failed too often", what, address)
        return _too_many(what, spent[1], everyone=False)
    if given is None:
        return Refusal(401, f"no {what}")
    over = rt.storage.limits.take(limits.every, now)
    log.warning("wrong %s from %s%s", what, address, " (refused: too many)" if over else "")
    if over is None:
        return Refusal(401, f"a wrong {what}")
    rate, wait = over
    return _too_many(what, wait, everyone=rate in limits.shared)


def _failed_before(limits: FailureLimits) -> tuple:
    """The address's failure budgets as if spent by a single failure: has it failed at all in this window?"""
    return tuple(dataclasses.replace(rate, limit=1) for rate in limits.own)


def _too_many(what: str, wait: float, everyone: bool) -> Refusal:
    seconds = math.ceil(wait)
    source = "from many addresses lately" if everyone else "from this address"
    return Refusal(429, f"too many wrong {what}s {source}: wait {seconds} seconds", seconds)
