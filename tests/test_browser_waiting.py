"""The waiting page (admission) in headless Chromium at phone size: what a visitor held back sees.

Eleven visitors take their places first, so the browser is number 12 in line at one visitor a minute. The
screenshot is saved in test-artifacts/waiting-phone.png (docs/screenshots/ holds a copy, shown on
docs/admission.md).
"""

from __future__ import annotations

import json

import pytest
import requests
from helpers import wait_for
from served import Served, run_cli
from standin import StandIn
from test_browser import (  # noqa: F401 - browser: the fixture, shared with the other browser tests
    ARTIFACTS,
    LANGUAGES,
    PHONE,
    browser,
    described,
    violations,
)

pytestmark = pytest.mark.slow

AHEAD = 11


def take_a_place(url: str) -> requests.Response:
    """A new visitor (no cookie) asks for the campaign page, as JSON."""
    with requests.Session() as session:
        session.trust_env = False
        return session.get(url, headers={"Accept": "application/json"}, allow_redirects=False, timeout=10)


def rate_in_force(server: Served) -> float:
    done = run_cli(["status", "--json"], server.env, server.cwd)
    return json.loads(done.stdout).get("admission", {}).get("rate", 0) if done.returncode == 0 else 0


def test_a_visitor_held_back_sees_their_place_and_wait_on_a_phone(browser, tmp_path):  # noqa: F811
    with StandIn() as standin:
        env = {
            "FALLBACK_MAIN_URL": standin.url,
            "FALLBACK_ADMIT_RATE": "1/minute",
            "FALLBACK_ADMIT_ADAPT": "false",
            "FALLBACK_CHECK_INTERVAL": "1",
            "FALLBACK_SITE_NAME": "Acme Shoes",
            "FALLBACK_CONTACT_EMAIL": "hello@acme.example",
        }
        with Served(env, tmp_path) as server:
            url = server.url + "/campaign/tv"
            wait_for(lambda: rate_in_force(server) > 0, 30, "the checker putting the rate in force")
            places = [take_a_place(url).json()["place_in_line"] for _ in range(AHEAD)]
            assert places == list(range(1, AHEAD + 1))
            page = browser.new_page(viewport=PHONE, locale="en-GB")
            answer = page.goto(url)
            assert answer.status == 503
            assert answer.headers["retry-after"] and int(answer.headers["retry-after"]) > 60 * AHEAD
            text = page.locator("main").inner_text()
            assert f"You are number {AHEAD + 1} in line" in text, text
            assert page.locator("form input[type=email]").is_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "waiting-phone.png"), full_page=True)
            page.close()
            # The waiting page in each of the six languages: axe-core finds nothing, and it is in that language.
            for language, accept in sorted(LANGUAGES.items()):
                context = browser.new_context(viewport=PHONE, extra_http_headers={"Accept-Language": accept})
                waiting = context.new_page()
                assert waiting.goto(url).status == 503
                assert waiting.locator("html").get_attribute("lang") == language
                found = violations(waiting)
                assert found == [], f"{language}: {described(found)}"
                context.close()
