"""Request guards shared by the views: client identity, rate limits, cross-site posts, security headers."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from flask import Response, current_app, request

from .config import Settings
from .storage import RateCheck

_COMMON = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin"), ("X-Frame-Options", "DENY"))
# Public pages run no script at all: they work without JavaScript, and nothing inline may run.
PUBLIC_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
) + _COMMON
# The dashboard runs its own small script, which reads the admin status.json.
ADMIN_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; connect-src 'self'; "
        "style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'",
    ),
) + _COMMON
HSTS = "max-age=31536000"
ADMIN_PATH = "/_fallback/admin"


def client_key_for(secret_key: str, address: str | None) -> str:
    """A keyed hash of a client's address: enough to count its attempts, useless to identify it."""
    raw = (address or "unknown").encode("utf-8", "replace")
    return hmac.new(secret_key.encode("utf-8"), raw, hashlib.sha256).hexdigest()[:32]


def client_key() -> str:
    """The current request's client, as `client_key_for` hashes it."""
    return client_key_for(current_app.secret_key, request.remote_addr)


def rate_check_for(settings: Settings, scope: str, key: str) -> RateCheck | None:
    """The rate limit `key` counts against in `scope`, or None when FALLBACK_RATE_LIMIT is 0."""
    if settings.rate_limit is None:
        return None
    return RateCheck(f"{scope}:{key}", settings.rate_limit.count, settings.rate_limit.seconds)


def rate_check(settings: Settings, scope: str) -> RateCheck | None:
    """The rate limit the current request counts against, or None when FALLBACK_RATE_LIMIT is 0."""
    return rate_check_for(settings, scope, client_key())


def cross_site(fetch_site: str | None, origin: str | None, host: str) -> bool:
    """Whether a browser says a post comes from another site (Fetch metadata, else Origin)."""
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    if origin is None:
        return False  # not a browser's cross-site form post: curl, scripts, old browsers
    return origin == "null" or urlsplit(origin).netloc.lower() != host.lower()


def is_cross_site() -> bool:
    """Whether the current request is a cross-site post, as `cross_site` judges it."""
    return cross_site(request.headers.get("Sec-Fetch-Site"), request.headers.get("Origin"), request.host)


def add_security_headers(response: Response) -> Response:
    """Every answer carries the security headers; HSTS only over HTTPS, where it means something."""
    # Appended, not looked up first: a miss in werkzeug's Headers costs an exception. A response
    # marked `secured` was built with them already.
    if not getattr(response, "secured", False):
        response.headers.extend(ADMIN_HEADERS if request.path.startswith(ADMIN_PATH) else PUBLIC_HEADERS)
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = HSTS
    return response
