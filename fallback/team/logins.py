"""The failure budgets of log-ins and tokens: per address (IPv6 per /64), and global, with waits that grow.

They hold whatever FALLBACK_RATE_LIMIT says (that one is generous for visitors behind one carrier
address, and 0 turns it off). Only failures spend them: the secret is compared first, and a
wrong one is counted in the shared rate-limit table, in one transaction with the check, so that
parallel guesses cannot slip past the count (fallback.team.tokens applies them).
"""

from __future__ import annotations

import dataclasses
import ipaddress

from fallback.core.settings import Settings
from fallback.storage import RateCheck
from fallback.web.guard import client_key_for, rate_check_for

# Per address: 10 failures per 15 minutes is 960 a day, at most, against a 12-character password.
PER_ADDRESS = (10, 15 * 60)
# Across every address (an attacker with many networks): once a budget is spent, wrong attempts wait for
# the end of its window, and the longer budgets make the waits grow, from 15 minutes to 2 hours to a
# day, for as long as the guessing goes on. Longest first, so the wait given is the longest that applies.
GLOBAL_BUDGET = ((1000, 24 * 3600), (300, 2 * 3600), (100, 15 * 60))


def address_group(address: str | None) -> str:
    """What one client holds: an IPv4 address, or an IPv6 address's /64 (a home or a server has a whole one)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclasses.dataclass(frozen=True)
class FailureLimits:
    """What a failed attempt from one address counts against: its own budgets, and the one all addresses share."""

    own: tuple[RateCheck, ...]  # FALLBACK_RATE_LIMIT's (if on) and the address group's failure budget
    shared: tuple[RateCheck, ...]

    @property
    def every(self) -> tuple[RateCheck, ...]:
        """Every budget, the address's own first."""
        return self.own + self.shared


def failure_limits(settings: Settings, secret_key: str, address: str | None, scope: str = "login") -> FailureLimits:
    """The budgets of `scope` (the admin log-in's `login`, the tokens' `token`) an attempt from `address` spends."""
    group = client_key_for(secret_key, address_group(address))
    general = rate_check_for(settings, scope, client_key_for(secret_key, address))
    own: tuple[RateCheck, ...] = (general,) if general else ()
    own += (RateCheck(f"{scope}-failures:{group}", *PER_ADDRESS),)
    shared = tuple(RateCheck(f"{scope}-failures:all:{seconds}", limit, seconds) for limit, seconds in GLOBAL_BUDGET)
    return FailureLimits(own, shared)
