"""The contact form's one validation path, as plain values: fields in, a lead or the errors out.

Both ways a submission arrives go through `check_contact`: the lean WSGI path
(`visitor.HotPath`), which answers a valid submission with its 303 without entering Flask, and
the Flask view (`web.contact`), which renders the page again with the errors beside the
fields. The WTForms `ContactForm` only renders the fields; it validates nothing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from flask_babel import lazy_gettext as _l

from fallback.storage import NewLead
from fallback.visitor.drillmark import FIELD as DRILL_FIELD
from fallback.visitor.drillmark import is_drill
from fallback.web.languages import LANGUAGE_FIELD, _

MAX_EMAIL = 254
MAX_NAME = 200
MAX_MESSAGE = 2000
MAX_PATH = 2000


# The consent wording, versioned per language: change the text, bump the version.
CONSENT_MESSAGE = _("I agree to be contacted about my request at this address.")
CONSENT_TEXT = _l(CONSENT_MESSAGE)
CONSENT_REVISION = 1
# The follow-up box, offered only with FALLBACK_SMTP_URL set; stored with its wording, like consent.
NOTIFY_MESSAGE = _("E-mail me when the site is back.")
# What an unticked HTML checkbox, or a script saying no, sends (WTForms' BooleanField reads it alike).
FALSE_VALUES = ("", "false")
FIELDS = ("email", "name", "message", "consent", "notify", "website", "token", "path", LANGUAGE_FIELD, DRILL_FIELD)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\t\r\n]")
CONTROL_CHARACTERS = _l("Please remove the invisible control characters from this field.")


def consent_version(language: str) -> str:
    """The version of the consent wording shown in `language`, such as `fr-1`."""
    return f"{language}-{CONSENT_REVISION}"


@dataclasses.dataclass(frozen=True)
class ContactCheck:
    """What a submission amounts to: the lead to store, or each field's error (lazy, translated at display)."""

    lead: NewLead | None
    errors: dict[str, object]
    token_problem: str | None = None


def _has_control(value: str, multiline: bool = False) -> bool:
    return bool(_CONTROL.search(value) or (not multiline and _LINE_BREAKS.search(value)))


def email_problem(email: str) -> object | None:
    """Why `email` is not a usable address, or None; no DNS look-up on the request path."""
    if not email:
        return _l("Please enter your e-mail address.")
    if len(email) > MAX_EMAIL:
        return _l("This address is too long.")
    if _has_control(email):
        return CONTROL_CHARACTERS
    from email_validator import EmailNotValidError, validate_email  # imported on first use: the CLI never needs it

    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return _l("Please enter a valid e-mail address, like name@example.com.")
    return None


def field_errors(fields: Mapping[str, str], require_consent: bool) -> dict[str, object]:
    """Each invalid field's message; empty when every field is acceptable."""
    errors: dict[str, object] = {}
    problem = email_problem(fields.get("email", ""))
    if problem is not None:
        errors["email"] = problem
    name, message = fields.get("name", ""), fields.get("message", "")
    if len(name) > MAX_NAME:
        errors["name"] = _l("Please keep your name under 200 characters.")
    elif _has_control(name):
        errors["name"] = CONTROL_CHARACTERS
    if len(message) > MAX_MESSAGE:
        errors["message"] = _l("Please keep your message under 2000 characters.")
    elif _has_control(message, multiline=True):
        errors["message"] = CONTROL_CHARACTERS
    if require_consent and fields.get("consent", "") in FALSE_VALUES:
        errors["consent"] = _l("Please tick this box so that we may contact you.")
    if len(fields.get("website", "")) > MAX_NAME:
        errors["website"] = _l("Please leave this field empty.")
    path = fields.get("path", "")
    if len(path) > MAX_PATH or _has_control(path):
        errors["path"] = _l("This page's address is not valid.")
    return errors


def landing_path(fields: Mapping[str, str]) -> str:
    """The visitor path the form was shown on, or `/`."""
    path = (fields.get("path") or "/").strip()
    return path if path.startswith("/") else "/"


def spam_reason_of(fields: Mapping[str, str], token_age: float | None, min_seconds: float) -> str | None:
    """Why a valid submission looks like a bot's (honeypot filled, form sent too fast), or None."""
    if fields.get("website"):
        return "honeypot"
    if (token_age or 0.0) < min_seconds:
        return f"sent {token_age or 0.0:.1f}s after the page was shown"
    return None


def check_contact(
    fields: Mapping[str, str],
    *,
    token_age: float | None,
    token_problem: str | None,
    require_consent: bool,
    min_seconds: float,
    language: str,
    consent_text: str,
    notify_text: str | None = None,
    drill_key: bytes | None = None,
) -> ContactCheck:
    """The lead a submission describes (spam recognised and marked), or why it cannot be stored.

    `token_age` is the form token's age in seconds, or None with `token_problem` saying why it
    was refused (missing, forged, expired). `notify_text` is the follow-up box's wording, None when it is
    not offered (no SMTP): a `notify` sent anyway is then ignored. `drill_key` recognises the test lead of
    `fallback drill --rehearse` (fallback.drillmark): kept apart, and sent at once without being taken for a bot.
    """
    errors = field_errors(fields, require_consent)
    if token_problem is not None or errors:
        return ContactCheck(None, errors, token_problem)
    drill = is_drill(drill_key, fields)
    spam_reason = None if drill else spam_reason_of(fields, token_age, min_seconds)
    consent = fields.get("consent", "") not in FALSE_VALUES
    lead = NewLead(
        email=fields["email"],
        name=fields.get("name", "").strip(),
        message=fields.get("message", "").strip(),
        consent=consent,
        consent_version=consent_version(language),
        consent_text=consent_text,
        landing_path=landing_path(fields),
        language=language,
        spam_reason=spam_reason,
        token=fields.get("token") or None,
        notify=notify_text is not None and fields.get("notify", "") not in FALSE_VALUES,
        notify_text=notify_text,
        drill=drill,
    )
    return ContactCheck(lead, {})
