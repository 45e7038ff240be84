"""What the views of one app share: settings, storage, the cached flag and status, the form signer, rendered pages."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, NamedTuple

from flask import current_app

from fallback.core.flag import CachedFlag
from fallback.core.settings import Settings
from fallback.storage import Storage
from fallback.web.form_token import FormToken

if TYPE_CHECKING:  # fallback.status imports fallback.visitor, which imports this module
    from fallback.checking.status import PublicStatus, ThrottledLog
    from fallback.core.counters import Metrics


class PageKey(NamedTuple):
    """What a rendered contact page depends on (a named tuple: built on every visitor's GET, it must be cheap)."""

    flag_version: int
    minutes_until_back: int | None
    language: str


@dataclasses.dataclass
class Runtime:
    """One app's shared objects, kept in `app.extensions["fallback"]`."""

    settings: Settings
    storage: Storage
    flag: CachedFlag
    tokens: FormToken
    # The key that signs sessions and tokens, also keying the hash of client addresses.
    secret_key: str
    status: PublicStatus
    health_log: ThrottledLog
    # The counters and the registry `/_fallback/metrics` reads (fallback.metrics).
    metrics: Metrics
    # The rendered contact page by what it depends on: see fallback.visitor.page_key.
    pages: dict[PageKey, bytes] = dataclasses.field(default_factory=dict)
    # The rendered stylesheet, once the first request asked for it.
    stylesheet: bytes | None = None
    # The page's script (live.js), likewise.
    live_script: bytes | None = None


def runtime() -> Runtime:
    """The current app's runtime."""
    return current_app.extensions["fallback"]
