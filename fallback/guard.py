"""Request guards shared by the views: client identity, rate limits, cross-site posts, security headers."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request
from flask.sessions import SecureCookieSessionInterface

from .config import Settings
from .storage import RateCheck

SECURITY_HEADERS = {
    # No script at all: the pages work without JavaScript, and nothing inline may run.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
HSTS = "max-age=31536000"


def client_key() -> str:
    """A keyed hash of the client's address: enough to count its attempts, useless to identify it."""
    address = (request.remote_addr or "unknown").encode("utf-8", "replace")
    return hmac.new(current_app.secret_key.encode("utf-8"), address, hashlib.sha256).hexdigest()[:32]


def rate_check(settings: Settings, scope: str) -> RateCheck | None:
    """The rate limit this request counts against, or None when FALLBACK_RATE_LIMIT is 0."""
    if settings.rate_limit is None:
        return None
    return RateCheck(f"{scope}:{client_key()}", settings.rate_limit.count, settings.rate_limit.seconds)


def is_cross_site() -> bool:
    """Whether a browser says this post comes from another site (Fetch metadata, else Origin)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False  # not a browser's cross-site form post: curl, scripts, old browsers
    return origin == "null" or urlsplit(origin).netloc.lower() != request.host.lower()


def add_security_headers(response: Response) -> Response:
    """Every answer carries the security headers; HSTS only over HTTPS, where it means something."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


class SessionInterface(SecureCookieSessionInterface):
    """The admin session cookie is marked Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure over HTTPS (directly or through a trusted proxy), or when configured so."""
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)
