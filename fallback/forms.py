"""Forms: the public contact form with its signed token, and the admin's forms."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import time
from datetime import timedelta

from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, Signer
from wtforms import (
    BooleanField,
    Form,
    HiddenField,
    PasswordField,
    StringField,
    TextAreaField,
)
from wtforms.csrf.session import SessionCSRF
from wtforms.validators import (
    AnyOf,
    Email,
    InputRequired,
    Length,
    Optional,
    ValidationError,
)

from .state import parse_duration

TOKEN_LIFETIME_SECONDS = 24 * 3600
# A clock a little ahead on another instance must not make a fresh form look forged.
TOKEN_CLOCK_SKEW_SECONDS = 60
MAX_EMAIL = 254
MAX_NAME = 200
MAX_MESSAGE = 2000
MAX_PATH = 2000
# The consent wording, versioned per language: change the text, bump the version.
CONSENT_TEXT = _l("I agree to be contacted about my request at this address.")
CONSENT_REVISION = 1


def consent_version(language: str) -> str:
    """The version of the consent wording shown in `language`, such as `fr-1`."""
    return f"{language}-{CONSENT_REVISION}"


class _KeyOnceSigner(Signer):
    """itsdangerous' Signer, deriving its key once instead of on every signature (the page's hot path)."""

    @functools.cached_property
    def _derived_key(self) -> bytes:
        return super().derive_key()

    def derive_key(self, secret_key=None) -> bytes:
        """The derived key; cached for the signer's own secret."""
        return self._derived_key if secret_key is None else super().derive_key(secret_key)


class FormToken:
    """A signed, stateless record of when a form was rendered: no session, no cookie."""

    def __init__(self, secret_key: str, clock=time.time):
        self._signer = _KeyOnceSigner(secret_key, salt="fallback.contact-form", digest_method=hashlib.sha256)
        self._clock = clock

    def issue(self) -> str:
        """A new token stamped with the current time in milliseconds, unique even within one millisecond."""
        stamp = f"{int(self._clock() * 1000):x}-{secrets.token_hex(4)}"
        return self._signer.sign(stamp).decode("ascii")

    def age(self, token: str | None) -> float:
        """Seconds since the token was issued; ValueError if missing, forged or expired."""
        if not token:
            raise ValueError("missing")
        try:
            issued_ms = int(self._signer.unsign(token.encode("ascii", "replace")).split(b"-")[0], 16)
        except (BadSignature, ValueError):
            raise ValueError("forged") from None
        age = self._clock() - issued_ms / 1000
        if age > TOKEN_LIFETIME_SECONDS or age < -TOKEN_CLOCK_SKEW_SECONDS:
            raise ValueError("expired")
        return max(age, 0.0)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\t\r\n]")


def plain_text(multiline: bool = False):
    """A validator refusing control characters (line breaks and tabs too, unless `multiline`)."""

    def check(form, field):
        value = field.data or ""
        if _CONTROL.search(value) or (not multiline and _LINE_BREAKS.search(value)):
            raise ValidationError(_l("Please remove the invisible control characters from this field."))

    return check


class ContactForm(Form):
    """The visitor's contact form; `website` is a honeypot that people never see."""

    email = StringField(
        "Email",
        validators=[
            InputRequired(_l("Please enter your e-mail address.")),
            Length(max=MAX_EMAIL, message=_l("This address is too long.")),
            plain_text(),
            # check_deliverability=False: no DNS look-up on the request path.
            Email(_l("Please enter a valid e-mail address, like name@example.com."), check_deliverability=False),
        ],
    )
    name = StringField("Name", validators=[
        Optional(), Length(max=MAX_NAME, message=_l("Please keep your name under 200 characters.")), plain_text()])
    message = TextAreaField("Message", validators=[
        Optional(), Length(max=MAX_MESSAGE, message=_l("Please keep your message under 2000 characters.")),
        plain_text(multiline=True)])
    consent = BooleanField(CONSENT_TEXT)
    website = StringField("Leave this field empty", validators=[Optional(), Length(max=MAX_NAME)])
    token = HiddenField()
    path = HiddenField(validators=[Optional(), Length(max=MAX_PATH), plain_text()])

    def __init__(self, *args, require_consent: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.require_consent = require_consent

    def validate_consent(self, field):
        """Consent must be given unless the operator turned the requirement off."""
        if self.require_consent and not field.data:
            raise ValidationError(_l("Please tick this box so that we may contact you."))

    def landing_path(self) -> str:
        """The visitor path the form was shown on, or `/`."""
        path = (self.path.data or "/").strip()
        return path if path.startswith("/") else "/"


class AdminForm(Form):
    """Base of the admin's forms: CSRF-protected through the admin session."""

    class Meta:
        csrf = True
        csrf_class = SessionCSRF
        csrf_time_limit = timedelta(hours=8)


class LoginForm(AdminForm):
    """The admin's log-in form."""

    password = PasswordField("Password", validators=[InputRequired("Please enter the password."), Length(max=1024)])


DURATION_CHOICES = [("", "until I switch back"), ("30m", "30 minutes"), ("2h", "2 hours"), ("1d", "1 day")]
MODE_CHOICES = {"auto": "auto (the checker decides)", "down": "down (show the page)", "up": "up (redirect)"}


class ModeForm(AdminForm):
    """The mode toggle: auto, forced up, or forced down, with an optional expiry and reason."""

    mode = StringField("Mode", validators=[InputRequired(), AnyOf(MODE_CHOICES, "Choose auto, up or down.")])
    duration = StringField("For", validators=[Optional(), Length(max=20)])
    reason = StringField("Reason", validators=[Optional(), Length(max=200)])

    def validate_duration(self, field):
        """The expiry must read as a duration such as 30m, 2h or 1d."""
        if field.data:
            try:
                parse_duration(field.data)
            except ValueError as error:
                raise ValidationError(str(error)) from None


class LogoutForm(AdminForm):
    """Log-out: a bare CSRF-protected post."""
