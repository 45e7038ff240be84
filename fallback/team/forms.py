"""The admin's forms: log-in, log-out and the mode toggle, CSRF-protected through the admin session."""

from __future__ import annotations

from datetime import timedelta

from wtforms import Field, Form, PasswordField, StringField
from wtforms.csrf.session import SessionCSRF
from wtforms.validators import AnyOf, InputRequired, Length, Optional, ValidationError

from fallback.core.durations import parse_duration


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

    def validate_duration(self, field: Field) -> None:
        """The expiry must read as a duration such as 30m, 2h or 1d."""
        if field.data:
            try:
                parse_duration(field.data)
            except ValueError as error:
                raise ValidationError(str(error)) from None


class LogoutForm(AdminForm):
    """Log-out: a bare CSRF-protected post."""
