"""What the views of one app share: settings, storage, the cached flag, the form signer."""

from __future__ import annotations

import dataclasses

from flask import current_app

from .config import Settings
from .forms import FormToken
from .state import CachedFlag
from .storage import Storage


@dataclasses.dataclass
class Runtime:
    """One app's shared objects, kept in `app.extensions["fallback"]`."""

    settings: Settings
    storage: Storage
    flag: CachedFlag
    tokens: FormToken
    # The key that signs sessions and tokens, also keying the hash of client addresses.
    secret_key: str
    # The rendered contact page, by (flag version, minutes until back): see web.page_bytes.
    pages: dict = dataclasses.field(default_factory=dict)


def runtime() -> Runtime:
    """The current app's runtime."""
    return current_app.extensions["fallback"]
