"""What a visitor reads in each of the six languages: the page, its errors, the thank-you, not-saved and unsubscribe
pages, the follow-up mail, and the consent wording stored exactly as it was shown."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from helpers import form_token, refuse_writes
from mailserver import SMTPServer

from fallback.core.clock import utcnow
from fallback.core.paths import shipped_templates
from fallback.core.settings import Settings
from fallback.outbound.followup import FollowupSender
from fallback.outbound.mail import MailTemplates, followup_message
from fallback.outbound.unsubscribe_token import UnsubscribeToken
from fallback.serving.app import create_app
from fallback.storage import NewLead
from fallback.storage.leads import email_key
from fallback.web.languages import translate

ACCEPT = {
    "en": "en-GB,en;q=0.9",
    "de": "de-DE,de;q=0.9,en;q=0.5",
    "es": "es-ES,es;q=0.9,en;q=0.5",
    "fr": "fr-FR,fr;q=0.9,en;q=0.5",
    "it": "it-IT,it;q=0.9,en;q=0.5",
    "nl": "nl-NL,nl;q=0.9,en;q=0.5",
}
HEADLINES = {
    "en": "We'll be right back",
    "de": "Wir sind gleich wieder da",
    "es": "Volvemos enseguida",
    "fr": "Nous revenons très vite",
    "it": "Torniamo subito",
    "nl": "We zijn zo terug",
}
# One minute and five: the singular and the plural form of each language, as a native reader writes them.
BACK_IN = {
    "en": ("Back in about 1 minute", "Back in about 5 minutes"),
    "de": ("In etwa 1 Minute wieder da", "In etwa 5 Minuten wieder da"),
    "es": ("De vuelta en aproximadamente 1 minuto", "De vuelta en aproximadamente 5 minutos"),
    "fr": ("De retour d’ici 1 minute environ", "De retour d’ici 5 minutes environ"),
    "it": ("Torniamo tra circa 1 minuto", "Torniamo tra circa 5 minuti"),
    "nl": ("Over ongeveer 1 minuut terug", "Over ongeveer 5 minuten terug"),
}
SITE = "Acme Shoes"
NOTIFY_SENTENCE = "As you asked, we will also e-mail you as soon as %(site)s is back."
each_language = pytest.mark.parametrize("language", sorted(ACCEPT))


def said(message: str, language: str, **values) -> str:
    """`message` in `language` from the catalogs, its placeholders filled in."""
    text = translate(message, language)
    return text % values if values else text


def read(response) -> str:
    """What a page says, its HTML entities read as the characters they stand for."""
    return html.unescape(response.get_data(as_text=True))


def another_than(language: str) -> str:
    """A header asking for some other language than `language`, as a cache that ignores Vary would leave it."""
    return ACCEPT["de" if language != "de" else "fr"]


@pytest.fixture
def mail_env(env, tmp_path):
    env.update(
        {
            "FALLBACK_SMTP_URL": "smtp://127.0.0.1:9",  # nothing is sent here: the box is offered with SMTP set
            "FALLBACK_MAIL_FROM": "Acme Shoes <hello@acme.example>",
            "FALLBACK_PUBLIC_URL": "https://sorry.acme.example",
            "FALLBACK_SITE_NAME": SITE,
            "FALLBACK_CONTACT_EMAIL": "hello@acme.example",
        }
    )
    return env


@pytest.fixture
def mail_app(mail_env, storage):
    app = create_app(Settings.from_env(mail_env), storage)
    app.config["TESTING"] = True
    storage.flag.set_mode("down", reason="test")
    return app


@pytest.fixture
def visitor(mail_app):
    return mail_app.test_client()


def page_fields(page: str, **fields) -> dict:
    """The fields the page's form sends, its hidden ones as rendered, the consent ticked."""
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))
    return {**hidden, "token": form_token(page), "email": "kim@example.org", "consent": "y", **fields}


def label(page: str, field: str) -> str:
    """The text of a field's label, as the visitor reads it (without the '(optional)' mark)."""
    raw = re.search(rf'<label for="{field}">(.*?)</label>', page, re.DOTALL).group(1)
    return html.unescape(raw.split(' <span class="opt">')[0])


@each_language
def test_the_page_speaks_the_visitors_language_and_stays_small(visitor, language):
    response = visitor.get("/shoes", headers={"Accept-Language": ACCEPT[language]})
    page = read(response)
    assert response.status_code == 503 and "Accept-Language" in response.headers["Vary"]
    assert f'<html lang="{language}">' in page and f'<input type="hidden" name="lang" value="{language}">' in page
    assert f"<h1>{HEADLINES[language]}</h1>" in page
    for message in (
        "E-mail address",
        "Keep me posted",
        "Leave your e-mail address and we will get back to you as soon as we can.",
    ):
        assert said(message, language) in page
    assert label(page, "consent") == translate("I agree to be contacted about my request at this address.", language)
    assert label(page, "notify") == translate("E-mail me when the site is back.", language)
    stylesheet = visitor.get("/_fallback/page.css")
    assert len(response.data) + len(stylesheet.data) < 20_000  # SPEC 6, with every optional part shown


def test_each_language_gets_its_own_cached_page(visitor):
    # The page is rendered once per flag version and language, then served from memory (fallback.visitor.hotpath).
    for language in ("de", "en", "de", "nl", "en", "nl"):
        page = read(visitor.get("/", headers={"Accept-Language": ACCEPT[language]}))
        assert f"<h1>{HEADLINES[language]}</h1>" in page and f'<html lang="{language}">' in page


@each_language
def test_the_time_until_back_uses_the_plural_rule_of_the_language(visitor, storage, mail_app, language):
    for minutes, expected in zip((1, 5), BACK_IN[language], strict=True):
        storage.flag.set_mode("down", until=utcnow() + timedelta(minutes=minutes, seconds=-10))
        mail_app.extensions["fallback"].flag.invalidate()
        page = read(visitor.get("/", headers={"Accept-Language": ACCEPT[language]}))
        assert f'<p class="back">{expected}</p>' in page


@each_language
def test_errors_are_in_the_language_the_form_was_shown_in(visitor, language):
    page = visitor.get("/", headers={"Accept-Language": ACCEPT[language]}).get_data(as_text=True)
    fields = page_fields(page, email="not an address", consent="")
    response = visitor.post("/_fallback/contact", data=fields, headers={"Accept-Language": another_than(language)})
    again = read(response)
    assert response.status_code == 400 and f'<html lang="{language}">' in again
    assert said("Please check the form", language) in again
    assert said("Please enter a valid e-mail address, like name@example.com.", language) in again
    assert said("Please tick this box so that we may contact you.", language) in again
    assert len(response.data) < 20_000


@each_language
def test_the_stored_consent_is_the_wording_the_visitor_was_shown(visitor, storage, language):
    page = visitor.get("/", headers={"Accept-Language": ACCEPT[language]}).get_data(as_text=True)
    fields = page_fields(page, email=f"{language}@example.org", notify="y")
    answer = visitor.post("/_fallback/contact", data=fields, headers={"Accept-Language": another_than(language)})
    assert answer.status_code == 303
    (lead,) = storage.leads.recent()
    assert lead["consent_text"] == label(page, "consent") and lead["consent_version"] == f"{language}-1"
    assert lead["notify_text"] == label(page, "notify") and lead["language"] == language


def test_without_the_forms_own_field_the_header_decides(visitor, storage):
    page = visitor.get("/").get_data(as_text=True)
    fields = page_fields(page, lang="xx")  # not one of ours: as if missing
    visitor.post("/_fallback/contact", data=fields, headers={"Accept-Language": ACCEPT["nl"]})
    (lead,) = storage.leads.recent()
    assert lead["language"] == "nl" and lead["consent_version"] == "nl-1"
    assert lead["consent_text"] == translate("I agree to be contacted about my request at this address.", "nl")


@each_language
def test_the_thank_you_page_says_the_mail_will_come_when_the_visitor_asked_for_it(visitor, language):
    headers = {"Accept-Language": ACCEPT[language]}
    page = visitor.get("/", headers=headers).get_data(as_text=True)
    for notify, location in (("y", "/_fallback/thanks?notify=1"), ("", "/_fallback/thanks")):
        answer = visitor.post("/_fallback/contact", data=page_fields(page, notify=notify), headers=headers)
        assert (answer.status_code, answer.headers["Location"]) == (303, location)
        thanks = visitor.get(location, headers=headers)
        text = read(thanks)
        assert f'<html lang="{language}">' in text and said("Thank you!", language) in text
        assert (said(NOTIFY_SENTENCE, language, site=SITE) in text) == bool(notify)
        assert thanks.headers["Vary"] == "Accept-Language"


def test_a_post_the_flask_view_stores_is_thanked_the_same_way(visitor):
    page = visitor.get("/").get_data(as_text=True)
    # multipart is not the lean path's (fallback.visitor.HotPath): the Flask view stores and thanks it.
    answer = visitor.post("/_fallback/contact", data=page_fields(page, notify="y"), content_type="multipart/form-data")
    assert (answer.status_code, answer.headers["Location"]) == (303, "/_fallback/thanks?notify=1")


@each_language
def test_the_unsubscribe_pages_speak_the_visitors_language(visitor, storage, language):
    headers = {"Accept-Language": ACCEPT[language]}
    lead_id = storage.leads.save(NewLead("kim@example.org", notify=True, notify_text="E-mail me", language=language))
    url = "/_fallback/unsubscribe?t=" + UnsubscribeToken("test-secret").issue(lead_id, email_key("kim@example.org"))
    screens = [
        (
            visitor.get(url, headers=headers),
            200,
            "Confirm below and you will receive no more follow-up mail from %(site)s.",
        ),
        (visitor.post(url, headers=headers), 200, "You will receive no more follow-up mail from %(site)s."),
        (
            visitor.get(url + "x", headers=headers),
            400,
            "It may have been cut or altered: the link in the message we sent you works.",
        ),
    ]
    for response, status, message in screens:
        text = read(response)
        assert response.status_code == status and f'<html lang="{language}">' in text
        assert said(message, language, site=SITE) in text


@each_language
@pytest.mark.sqlite_only("PRAGMA query_only")
def test_the_not_saved_page_speaks_the_language_of_the_form(visitor, storage, language):
    page = visitor.get("/", headers={"Accept-Language": ACCEPT[language]}).get_data(as_text=True)
    refuse_writes(storage)
    try:
        response = visitor.post("/_fallback/contact", data=page_fields(page))
    finally:
        refuse_writes(storage, False)
    text = read(response)
    assert response.status_code == 503 and f'<html lang="{language}">' in text
    assert said("Sorry, your message was not saved", language) in text


@each_language
def test_the_follow_up_mail_is_written_in_the_given_language(language):
    message = followup_message(
        MailTemplates(str(shipped_templates())),
        to="kim@example.org",
        language=language,
        site_name=SITE,
        link="https://www.acme.example/shoes",
        mail_from="Acme Shoes <hello@acme.example>",
        unsubscribe_url="https://sorry.acme.example/_fallback/unsubscribe?t=1.signature",
    )
    assert message["Subject"] == translate("%(site)s is back", language) % {"site": SITE}
    assert message["Content-Language"] == language
    text = message.get_body(("plain",)).get_content()
    page = html.unescape(message.get_body(("html",)).get_content())
    body = "You asked us to tell you when %(site)s was back. It is: you can pick up where you left off."
    assert translate("Hello,", language) in text and "Kim" not in text
    assert translate(body, language) % {"site": SITE} in text
    assert f'<html lang="{language}">' in page and said("Back to %(site)s", language, site=SITE) in page


def test_a_german_visitor_gets_the_follow_up_mail_in_german(mail_env, storage):
    with SMTPServer() as server:
        env = {**mail_env, "FALLBACK_SMTP_URL": server.url, "FALLBACK_FOLLOWUP_DELAY": "0"}
        app = create_app(Settings.from_env(env), storage)
        storage.flag.flip(storage.flag.read().state, "down", "test outage")
        client = app.test_client()
        page = client.get("/", headers={"Accept-Language": ACCEPT["de"]}).get_data(as_text=True)
        client.post("/_fallback/contact", data=page_fields(page, notify="y", email="kai@example.org"))
        storage.flag.flip("down", "up", "back")
        sender = FollowupSender(Settings.from_env(env), storage, "test-secret")
        sender.queue_after_recovery()
        assert sender.deliver_pending() == 1
    (message,) = server.mailbox.messages
    assert message["Subject"] == "Acme Shoes ist wieder erreichbar" and message["Content-Language"] == "de"
    assert "Guten Tag," in message.get_body(("plain",)).get_content()
