"""The contact form's token: a signed, stateless record of when a form was rendered (no session, no cookie)."""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections.abc import Callable

from itsdangerous import BadSignature, Signer

TOKEN_LIFETIME_SECONDS = 24 * 3600
# A clock a little ahead on another instance must not make a fresh form look forged.
TOKEN_CLOCK_SKEW_SECONDS = 60


class _KeyOnceSigner(Signer):
    """itsdangerous' Signer, deriving its key once instead of on every signature (the page's hot path)."""

    @functools.cached_property
    def _derived_key(self) -> bytes:
        return super().derive_key()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        """The derived key; cached for the signer's own secret."""
        return self._derived_key if secret_key is None else super().derive_key(secret_key)


class FormToken:
    """A signed, stateless record of when a form was rendered: no session, no cookie."""

    def __init__(self, secret_key: str, clock: Callable[[], float] = time.time):
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
