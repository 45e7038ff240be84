"""What storage takes and gives back: plain dataclasses, the same for both backends."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class NewLead:
    """One submission of the contact form, as validated by the web layer."""

    email: str
    name: str = ""
    message: str = ""
    consent: bool = False
    consent_version: str | None = None
    consent_text: str | None = None
    landing_path: str = "/"
    language: str = "en"
    spam_reason: str | None = None
    token: str | None = None  # the form's token: with the fields, it tells a double click from a new post
    notify: bool = False  # asked to be mailed when the site is back
    notify_text: str | None = None  # the wording of that box as shown
    drill: bool = False  # sent by `fallback drill --rehearse` under the installation's key: kept apart, then erased
