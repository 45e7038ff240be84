"""Log-out ends every session at once in every worker of a real `fallback serve` (SPEC 5, Admin sessions).

A copy of the admin cookie, replayed on fresh connections right after the log-out, reaches either of the
two workers; none may still open the dashboard, not even for the second a worker could cache the
sessions' generation.
"""

from __future__ import annotations

import pytest
import requests
from helpers import ADMIN_PASSWORD, csrf_token
from served import Served
from standin import StandIn

pytestmark = pytest.mark.slow

COOKIE = "fallback_admin"
ROUNDS = 5
REPLAYS = 12


def dashboard_with(url: str, cookie: str) -> bool:
    """Whether `cookie`, sent on a fresh connection, opens the dashboard."""
    with requests.Session() as stranger:
        stranger.trust_env = False
        stranger.cookies.set(COOKIE, cookie, path="/_fallback/admin")
        return "Set mode" in stranger.get(url + "/_fallback/admin", timeout=10).text


def test_a_copied_cookie_opens_nothing_on_any_worker_right_after_log_out(tmp_path):
    env = {"FALLBACK_MAIN_URL": "https://www.example.com", "FALLBACK_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with StandIn() as site, Served({**env, "FALLBACK_CHECK_URLS": site.url}, tmp_path, workers=2) as served:
        opened_after = []
        for _ in range(ROUNDS):
            with requests.Session() as admin:
                admin.trust_env = False
                page = admin.get(served.url + "/_fallback/admin", timeout=10).text
                admin.post(
                    served.url + "/_fallback/admin/login",
                    data={"password": ADMIN_PASSWORD, "csrf_token": csrf_token(page)},
                    timeout=10,
                )
                cookie = admin.cookies.get(COOKIE)
                # Both workers have just checked this session (and read the generation).
                opened_before = [dashboard_with(served.url, cookie) for _ in range(REPLAYS)]
                assert all(opened_before), opened_before
                dashboard = admin.get(served.url + "/_fallback/admin", timeout=10).text
                admin.post(
                    served.url + "/_fallback/admin/logout", data={"csrf_token": csrf_token(dashboard)}, timeout=10
                )
            opened_after += [dashboard_with(served.url, cookie) for _ in range(REPLAYS)]
    assert not any(opened_after), f"{sum(opened_after)} of {len(opened_after)} replays opened the dashboard"
