"""Building the "we're back" message: plain text and HTML from templates/mail/, in the lead's language."""

from __future__ import annotations

import email.policy
import email.utils
import functools
from email.message import EmailMessage

import jinja2

from fallback.core.urls import redirect_location
from fallback.web.languages import TRANSLATIONS, _, translate

SUBJECT = _("%(site)s is back")
TEST_PREFIX = "[test] "


class UnencodedHeader(str):
    """A header written as it is: on its own line when it is too long (folded), never RFC 2047-encoded.

    The email package encodes an unstructured header whose one word is longer than a line, and a URL with
    a token is one: `List-Unsubscribe: =?utf-8?q?=3Chttps=3A//...` is no URL to a mail client, which then
    offers no one-click unsubscribe (RFC 8058). The value must be ASCII: a URL is.
    """

    name: str

    def __new__(cls, name: str, value: str) -> UnencodedHeader:
        header = super().__new__(cls, value)
        header.name = name  # the policy writes an object with a name through its own fold()
        return header

    def fold(self, *, policy: email.policy.Policy) -> str:
        """The header's lines: one, or the name and then the value on a continuation line."""
        line = f"{self.name}: {self}"
        if not policy.max_line_length or len(line) <= policy.max_line_length:
            return line + policy.linesep
        return f"{self.name}:{policy.linesep} {self}{policy.linesep}"


class MailTemplates:
    """templates/mail/, the operator's FALLBACK_TEMPLATES first, with one Jinja environment per language."""

    def __init__(self, shipped: str, override: str | None = None):
        folders = [override, shipped] if override else [shipped]
        self._loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(folder) for folder in folders])

    @functools.lru_cache(maxsize=8)  # one per language: the process keeps a few
    def _environment(self, language: str) -> jinja2.Environment:
        from babel.support import Translations

        environment = jinja2.Environment(
            loader=self._loader, autoescape=jinja2.select_autoescape(["html"]), extensions=["jinja2.ext.i18n"]
        )
        translations = Translations.load(str(TRANSLATIONS), [language])
        environment.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
        return environment

    def render(self, template: str, language: str, **context: object) -> str:
        """The template `template` rendered in `language`."""
        return self._environment(language).get_template(template).render(lang=language, **context)


def main_site_link(main_url: str, landing_path: str) -> str:
    """The main site at the path the visitor had asked for, without its query (anyone could have typed one)."""
    path = (landing_path or "/").partition("?")[0]
    return redirect_location(main_url, path, b"", host="") or main_url


def followup_message(
    templates: MailTemplates,
    *,
    to: str,
    language: str,
    site_name: str,
    link: str,
    mail_from: str,
    unsubscribe_url: str,
    test: bool = False,
) -> EmailMessage:
    """The message to one lead: text and HTML, List-Unsubscribe with one-click, a Message-ID and a Date.

    Nothing a visitor wrote is in it (no name): anyone can type anyone's address on the form.
    """
    context = {"site_name": site_name, "link": link, "unsubscribe_url": unsubscribe_url}
    message = EmailMessage()
    message["Subject"] = (TEST_PREFIX if test else "") + translate(SUBJECT, language) % {"site": site_name}
    message["From"] = mail_from
    message["To"] = to
    message["Date"] = email.utils.formatdate(usegmt=True)
    message["Message-ID"] = email.utils.make_msgid(domain=email.utils.parseaddr(mail_from)[1].rpartition("@")[2])
    # RFC 8058: a mail client may unsubscribe with one POST, without opening a page.
    message["List-Unsubscribe"] = UnencodedHeader("List-Unsubscribe", f"<{unsubscribe_url}>")
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(templates.render("mail/back.txt", language, **context))
    message.add_alternative(templates.render("mail/back.html", language, **context), subtype="html")
    # After the bodies: set_content clears every Content-* header set before it.
    message["Content-Language"] = language
    return message
