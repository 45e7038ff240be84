"""Forms: the public contact form with its signed token, and the admin's forms."""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from datetime import timedelta

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
    InputRequired,
    Length,
    Optional,
    ValidationError,
)

from fallback.core.flag import parse_duration
from fallback.visitor.contact import CONSENT_TEXT

TOKEN_LIFETIME_SECONDS = 24 * 3600
# A clock a little ahead on another instance must not make a fresh form look forged.
TOKEN_CLOCK_SKEW_SECONDS = 60


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


class ContactForm(Form):
    """The visitor's contact form, for rendering only: `contact.check_contact` validates it.

    `website` is a honeypot that people never see.
    """

    email = StringField("Email")
    name = StringField("Name")
    message = TextAreaField("Message")
    consent = BooleanField(CONSENT_TEXT)
    notify = BooleanField()
    website = StringField("Leave this field empty")
    token = HiddenField()
    path = HiddenField()

    def show_errors(self, errors: dict[str, object]) -> None:
        """Put each field's error (from `check_contact`) beside that field."""
        for name, message in errors.items():
            self[name].errors = [message]


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
