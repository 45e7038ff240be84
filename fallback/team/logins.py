"""The log-in limiter: failures per address (IPv6 per /64), and a global budget whose waits grow.

It holds whatever FALLBACK_RATE_LIMIT says (that one is generous for visitors behind one carrier
address, and 0 turns it off). Each attempt is counted before the password is checked, in the
shared rate-limit table, so parallel guesses cannot slip past the count; a successful log-in is
given back, so only failures spend the budgets.
"""

from __future__ import annotations

import ipaddress

from fallback.core.settings import Settings
from fallback.storage import RateCheck
from fallback.web.guard import client_key_for, rate_check_for

# Per address: 10 failures per 15 minutes is 960 a day, at most, against a 12-character password.
PER_ADDRESS = (10, 15 * 60)
# Across every address (an attacker with many networks): once a budget is spent, attempts wait for
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


def login_limits(settings: Settings, secret_key: str, address: str | None, scope: str = "login") -> list[RateCheck]:
    """Every limit an attempt from `address` counts against: FALLBACK_RATE_LIMIT's, its group's, the global; the
    admin log-in's (`scope` login), or the API token's (`api`), each with budgets of its own."""
    group = client_key_for(secret_key, address_group(address))
    general = rate_check_for(settings, scope, client_key_for(secret_key, address))
    own = [RateCheck(f"{scope}-failures:{group}", *PER_ADDRESS)]
    shared = [RateCheck(f"{scope}-failures:all:{seconds}", limit, seconds) for limit, seconds in GLOBAL_BUDGET]
    return ([general] if general else []) + own + shared
