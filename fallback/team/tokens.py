"""Bearer tokens and passwords: read from the request, compared in constant time."""

from __future__ import annotations

import hmac

from flask import request


def same_secret(given: str | None, expected: str | None) -> bool:
    """Compare secrets in constant time; nothing matches an unset secret."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer` header, if the request has one."""
    authorization = request.headers.get("Authorization", "")
    return authorization[7:].strip() or None if authorization[:7].lower() == "bearer " else None
