"""Recognising a probe that reached fallback itself: a challenge the probe sends, a keyed mark fallback answers.

The checker's probe sends a fresh random challenge in `Fallback-Probe`. Every answer fallback gives to a
request carrying one (the WSGI fast path's and Flask's alike) carries `Fallback-Probe-Mark`: an HMAC of
that challenge under a key derived from the installation's secret key, which every instance on one
database shares. Only this installation can compute the mark, and a challenge is never used twice, so
a mark seen once cannot be replayed by anyone else to make the checker doubt a healthy main site.

No Flask and no `requests` here: the probe and the web app both import this module.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse

REQUEST_HEADER = "Fallback-Probe"
MARK_HEADER = "Fallback-Probe-Mark"
# How the request header arrives in a WSGI environ.
ENVIRON_KEY = "HTTP_FALLBACK_PROBE"
# Our challenges are 24 characters; anything much longer is not ours and gets no mark.
MAX_CHALLENGE = 64
REASON = "reached fallback itself: the main site needs an origin hostname of its own"
WARNING = (
    "the checker's probe reached fallback itself: give the main site an origin hostname of its own"
    " (such as origin.example.com) that does not lead to fallback, and set FALLBACK_CHECK_URLS to it."
    " Behind a proxy that falls back to fallback, this is also how an outage looks"
)


def probe_key(secret_key: str) -> bytes:
    """The key of the marks, derived from the installation's secret key (which is never used as is)."""
    return hmac.new(secret_key.encode("utf-8"), b"fallback self-probe mark", hashlib.sha256).digest()


def new_challenge() -> str:
    """A fresh random challenge for one probe request."""
    return secrets.token_urlsafe(18)


def mark(key: bytes, challenge: str) -> str:
    """The mark fallback answers to `challenge`."""
    return hmac.new(key, challenge.encode("latin-1", "replace"), hashlib.sha256).hexdigest()


def is_marked(key: bytes, challenge: str, answer: str | None) -> bool:
    """Whether `answer` (the mark header received, or None) is this installation's mark of `challenge`."""
    return answer is not None and hmac.compare_digest(mark(key, challenge), answer.strip())


def marking(start_response: StartResponse, key: bytes, challenge: str) -> StartResponse:
    """A WSGI `start_response` that adds the mark of `challenge` to whatever answer is started with it."""
    if len(challenge) > MAX_CHALLENGE:
        return start_response
    value = mark(key, challenge)

    def start(
        status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        return start_response(status, [*headers, (MARK_HEADER, value)], exc_info)

    return start
