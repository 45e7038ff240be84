"""The visitor's contact form, for rendering: fallback.visitor.contact validates what it sends."""

from __future__ import annotations

from wtforms import BooleanField, Form, HiddenField, StringField, TextAreaField

from fallback.visitor.contact import CONSENT_TEXT


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
