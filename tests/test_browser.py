"""In a real browser (Debian's headless Chromium, driven by Playwright): keyboard use, errors, the toggle, the six
languages, the dashboard on a phone, and an axe-core audit (WCAG 2.2 A/AA and best practices) of every screen in each
language.

Screenshots of the page and the dashboard at phone size are saved in test-artifacts/ (docs/screenshots/ holds copies).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ADMIN_PASSWORD, every_worker_answers
from mailserver import SMTPServer
from procs import free_port
from served import Served
from standin import StandIn
from test_webhooks import SECRET as WEBHOOK_SECRET

from fallback.outbound.unsubscribe_token import UnsubscribeToken
from fallback.storage.leads import email_key
from fallback.web.languages import translate

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
SECRET_KEY = "a browser test's secret key, known to mint unsubscribe tokens"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
LANGUAGES = {
    "en": "en-GB,en",
    "de": "de-DE,de",
    "es": "es-ES,es",
    "fr": "fr-FR,fr",
    "it": "it-IT,it",
    "nl": "nl-NL,nl",
}
# The admin's screens are in English only: audited once, with the English visitor's run.
ADMIN_SCREENS = ("the dashboard", "the log-in")

playwright_api = (
    pytest.importorskip("playwright.sync_api")
    if not os.environ.get("CI")
    else __import__("playwright.sync_api", fromlist=["sync_playwright"])
)
if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """fallback serve, watching a healthy stand-in; tests force the page with the dashboard or the CLI."""
    folder = tmp_path_factory.mktemp("browser")
    with StandIn() as standin:
        env = {
            "FALLBACK_MAIN_URL": standin.url,
            "FALLBACK_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "FALLBACK_RATE_LIMIT": "0",
            "FALLBACK_FORM_MIN_SECONDS": "0",
            "FALLBACK_SITE_NAME": "Acme Shoes",
            "FALLBACK_CONTACT_EMAIL": "hello@acme.example",
            "FALLBACK_CHECK_INTERVAL": "1",
        }
        with Served(env, folder) as server:
            yield server


def log_in(page, base: str) -> None:
    page.goto(base + "/_fallback/admin")
    page.fill("#password", ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Set mode")


def set_mode(page, mode: str, reason: str = "") -> None:
    page.select_option("#mode", mode)
    page.fill("#reason", reason)
    page.click("text=Set mode")
    page.wait_for_selector("text=Set mode")


def wait_for_status(page, url: str, status: int, seconds: float = 3.0) -> None:
    """Reload `url` until it answers `status` (workers see a flip within a second), or until a load started after
    `seconds` has come back: timed by when each load starts, so a busy machine's slow answers do not cut it short."""
    deadline = time.monotonic() + seconds
    while (sent := time.monotonic()) and page.goto(url).status != status and sent < deadline:
        time.sleep(0.1)


@pytest.fixture
def admin(browser, served):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, served.url)
    yield page
    page.close()


@pytest.fixture
def forced_down(admin, served):
    set_mode(admin, "down")
    yield
    set_mode(admin, "auto")


def test_the_dashboard_switches_the_page_on_and_off(browser, served, admin):
    visitor = browser.new_page(viewport=PHONE)
    visitor.goto(served.url + "/shop")
    assert not visitor.url.startswith(served.url)  # redirected to the main site
    set_mode(admin, "down")
    every_worker_answers(
        served.url + "/shop", 503
    )  # the page, not a worker still redirecting, is what the visitor gets
    assert visitor.goto(served.url + "/shop").status == 503
    assert visitor.locator("h1").inner_text() == "We'll be right back"
    ARTIFACTS.mkdir(exist_ok=True)
    visitor.screenshot(path=str(ARTIFACTS / "page-phone.png"), full_page=True)
    set_mode(admin, "auto")
    wait_for_status(visitor, served.url + "/shop", 200)
    assert not visitor.url.startswith(served.url)
    visitor.close()


def test_a_visitor_sends_the_form_with_the_keyboard_alone(browser, served, forced_down):
    page = browser.new_page(viewport=PHONE)
    wait_for_status(page, served.url + "/landing", 503)
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.id")
    while focused != "email":  # skip the links, if any, before the form
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id")
    page.keyboard.type("keyboard@example.org")
    page.keyboard.press("Tab")
    page.keyboard.type("Kim Keys")
    page.keyboard.press("Tab")
    page.keyboard.type("Call me after the show")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "consent"  # the honeypot is skipped
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") == "BUTTON"
    page.keyboard.press("Enter")
    page.wait_for_url("**/_fallback/thanks")
    assert "Thank you" in page.locator("h1").inner_text()
    page.close()


def test_field_errors_are_shown_beside_fields_and_announced(browser, served, forced_down):
    page = browser.new_page(viewport=PHONE)
    wait_for_status(page, served.url + "/", 503)
    page.fill("#email", "not an address")
    page.click("button[type=submit]")
    assert page.locator("#error-summary[role=alert]").is_visible()
    email = page.locator("#email")
    assert email.get_attribute("aria-invalid") == "true"
    assert email.get_attribute("aria-describedby") == "email-error"
    assert "valid e-mail address" in page.locator("#email-error").inner_text()
    assert email.input_value() == "not an address"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-errors-phone.png"), full_page=True)
    page.close()


@pytest.mark.parametrize("language", sorted(set(LANGUAGES) - {"en"}))
def test_a_browser_in_another_language_gets_the_page_in_it(browser, audited, language):
    context = browser.new_context(
        viewport=PHONE,
        locale=LANGUAGES[language].split(",")[0],
        extra_http_headers={"Accept-Language": LANGUAGES[language]},
    )
    page = context.new_page()
    wait_for_status(page, audited.url + "/", 503)
    assert page.locator("html").get_attribute("lang") == language
    assert page.locator("h1").inner_text() == translate("We'll be right back", language) != "We'll be right back"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # long words wrap
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page-{language}-phone.png"), full_page=True)
    context.close()


def test_the_dashboard_fits_a_phone_without_scrolling_sideways(browser, audited):
    page = browser.new_page(viewport=PHONE)
    log_in(page, audited.url)
    assert page.locator(".tile").count() >= 4
    assert page.locator("table tbody tr").count() >= 4  # leads, webhooks and mode changes have rows
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    cell = page.locator("#leads ~ table tbody td").first  # a stacked row's cell says which column it is
    assert cell.evaluate("cell => getComputedStyle(cell, '::before').content") == '"E-mail"'
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    for width in (700, DESKTOP["width"]):  # above the breakpoint, a real table whose cells wrap
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.close()


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_the_page_makes_no_request_to_another_origin_and_stays_small(browser, audited, language):
    context = browser.new_context(viewport=PHONE, extra_http_headers={"Accept-Language": LANGUAGES[language]})
    page = context.new_page()
    origins, sizes = set(), []
    page.on("request", lambda request: origins.add(request.url.split("/")[2]))
    page.on("response", lambda response: sizes.append(len(response.body())))
    wait_for_status(page, audited.url + "/", 503)
    page.reload()
    assert page.locator("html").get_attribute("lang") == language
    assert origins == {f"127.0.0.1:{audited.port}"}
    assert sum(sizes) < 20_000  # with the follow-up box and the contact address: the longest page
    context.close()


def test_the_follow_up_mail_renders_in_a_browser(browser):
    from fallback.core.paths import shipped_templates
    from fallback.outbound.mail import MailTemplates, followup_message

    message = followup_message(
        MailTemplates(str(shipped_templates())),
        to="kim@example.org",
        language="en",
        site_name="Acme Shoes",
        link="https://www.acme.example/shoes/trail",
        mail_from="Acme Shoes <hello@acme.example>",
        unsubscribe_url="https://sorry.acme.example/_fallback/unsubscribe?t=1.signature",
    )
    page = browser.new_page(viewport={"width": 640, "height": 480})
    page.set_content(message.get_body(("html",)).get_content())
    assert page.locator("h1").inner_text() == "Acme Shoes is back"
    assert page.get_by_role("link", name="Back to Acme Shoes").get_attribute("href").endswith("/shoes/trail")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "mail-back.png"), full_page=True)
    page.close()


@pytest.fixture(scope="module")
def audited(tmp_path_factory, browser):
    """fallback serve with follow-up mail and webhooks, forced down, with a lead and a failing webhook delivery."""
    folder = tmp_path_factory.mktemp("audited")
    port = free_port()
    with StandIn() as standin, SMTPServer() as smtp:
        env = {
            "FALLBACK_MAIN_URL": standin.url,
            "FALLBACK_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "FALLBACK_SECRET_KEY": SECRET_KEY,
            "FALLBACK_RATE_LIMIT": "0",
            "FALLBACK_FORM_MIN_SECONDS": "0",
            "FALLBACK_SITE_NAME": "Acme Shoes",
            "FALLBACK_CONTACT_EMAIL": "hello@acme.example",
            "FALLBACK_CHECK_INTERVAL": "1",
            "FALLBACK_SMTP_URL": smtp.url,
            "FALLBACK_MAIL_FROM": "Acme Shoes <hello@acme.example>",
            "FALLBACK_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "FALLBACK_WEBHOOK_URLS": f"http://127.0.0.1:{free_port()}/a-receiver-that-is-not-listening",
            "FALLBACK_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
        with Served(env, folder, port=port) as server:
            admin = browser.new_page(viewport=DESKTOP)
            log_in(admin, server.url)
            set_mode(admin, "down", reason="Planned maintenance of the payment provider")
            wait_for_status(admin, server.url + "/", 503)
            send_form(admin, "a.rather.long.address.for.a.narrow.screen@example.org")
            admin.close()
            yield server


def send_form(page, email: str) -> None:
    """Fill in and send the page's form (the page is showing), asking for the follow-up mail; on the thank-you page,
    check that it says the mail will come."""
    page.fill("#email", email)
    page.fill("#name", "Kim Keys")
    page.fill("#message", "Please call me back about the order of the red trail shoes, size 42, after six.")
    page.check("#consent")
    page.check("#notify")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/_fallback/thanks\?notify=1$"))
    language = page.locator("html").get_attribute("lang")
    promise = translate("As you asked, we will also e-mail you as soon as %(site)s is back.", language)
    assert promise % {"site": "Acme Shoes"} in page.locator("main").inner_text()


def lead_id(page, base: str, email: str) -> int:
    """A lead's id, read from its delete button on the dashboard (the page is logged in)."""
    page.goto(base + "/_fallback/admin?q=" + email)
    action = page.locator("form[action*='/leads/']").first.get_attribute("action")
    return int(action.split("/leads/")[1].split("/")[0])


def violations(page) -> list[dict]:
    """What axe-core finds on the page as it is, with the WCAG 2.2 A/AA rules and best practices."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]})
    return results.response["violations"]


def described(found: list[dict]) -> str:
    return "\n".join(f"{rule['id']} ({rule['impact']}): {[node['target'] for node in rule['nodes']]}" for rule in found)


def screens(page, base: str, language: str) -> Iterator[str]:
    """Go to each screen in turn, yielding its name once the page shows it."""
    email = f"audit-{language}-{time.monotonic_ns()}@example.org"
    wait_for_status(page, base + "/", 503)
    yield "the page"
    page.fill("#email", "not an address")
    page.click("button[type=submit]")
    page.wait_for_selector("#error-summary")
    yield "the page with errors"
    send_form(page, email)
    yield "the thank-you page"
    log_in(page, base)
    yield "the dashboard"
    token = UnsubscribeToken(SECRET_KEY).issue(lead_id(page, base, email), email_key(email))
    page.goto(base + "/_fallback/unsubscribe?t=" + token)
    page.wait_for_selector("form[method=post]")
    yield "the unsubscribe page"
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("form").count() == 0
    yield "the unsubscription done"
    page.goto(base + "/_fallback/unsubscribe?t=" + token + "x")
    yield "the unsubscribe page of a broken link"
    page.goto(base + "/_fallback/admin")
    page.click("text=Log out")
    page.wait_for_selector("#password")
    yield "the log-in"


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_axe_finds_no_accessibility_violation_on_any_screen(browser, audited, language, viewport):
    context = browser.new_context(viewport=viewport, extra_http_headers={"Accept-Language": LANGUAGES[language]})
    page = context.new_page()
    seen, failures = [], {}
    for screen in screens(page, audited.url, language):
        seen.append(screen)
        if screen in ADMIN_SCREENS and language != "en":
            continue
        if screen not in ADMIN_SCREENS:
            assert page.locator("html").get_attribute("lang") == language, screen
        found = violations(page)
        if found:
            failures[screen] = described(found)
    context.close()
    assert len(seen) == 8
    assert not failures, "\n".join(f"{screen}:\n{text}" for screen, text in failures.items())


def test_the_page_takes_the_visitor_back_to_the_address_they_asked_for_by_itself_once_the_site_is_up(browser, served):
    from served import run_cli

    # Long enough for both pages to be opened on a busy machine before it expires.
    forced = run_cli(["mode", "down", "--for", "15s", "--reason", "live page test"], served.env, served.cwd)
    assert forced.returncode == 0, forced.stderr
    every_worker_answers(served.url + "/probe", 503)
    visitor = browser.new_page(viewport=PHONE)
    typing = browser.new_page(viewport=PHONE)
    try:
        assert visitor.goto(served.url + "/shop/shoes?size=42").status == 503
        assert typing.goto(served.url + "/shop/boots").status == 503
        typing.fill("#email", "half-typed@exam")  # someone in the middle of the form is never taken away
        # The page looks again Retry-After +-30% after it was served (under 15 s), then every retry_after +-30%.
        visitor.wait_for_url(lambda url: not url.startswith(served.url), timeout=60_000)
        assert visitor.url.endswith("/shop/shoes?size=42")
        time.sleep(6)
        assert typing.url.startswith(served.url) and typing.input_value("#email") == "half-typed@exam"
    finally:
        visitor.close()
        typing.close()
