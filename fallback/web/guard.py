"""Request guards shared by the views: client identity, rate limits, cross-site posts, security headers."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import Response, current_app, request

from fallback.core.settings import Settings
from fallback.storage import RateCheck

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_COMMON = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin"), ("X-Frame-Options", "DENY"))
# Public pages work without JavaScript; the page's one script is its own file (live.js), and nothing inline may run.
PUBLIC_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; "
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
log = logging.getLogger("fallback")

HSTS = "max-age=31536000"
ADMIN_PATH = "/_fallback/admin"


def client_key_for(secret_key: str, address: str | None) -> str:
    """A keyed hash of a client's address: enough to count its attempts, useless to identify it."""
    raw = (address or "unknown").encode("utf-8", "replace")
    return hmac.new(secret_key.encode("utf-8"), raw, hashlib.sha256).hexdigest()[:32]


def rate_check_for(settings: Settings, scope: str, key: str) -> RateCheck | None:
    """The rate limit `key` counts against in `scope`, or None when FALLBACK_RATE_LIMIT is 0."""
    if settings.rate_limit is None:
        return None
    return RateCheck(f"{scope}:{key}", settings.rate_limit.count, settings.rate_limit.seconds)


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
    """Every answer carries the security headers; HSTS over HTTPS, as seen here or as FALLBACK_PUBLIC_URL says."""
    # Appended, not looked up first: a miss in werkzeug's Headers costs an exception. A response
    # marked `secured` was built with them already.
    if not getattr(response, "secured", False):
        response.headers.extend(ADMIN_HEADERS if request.path.startswith(ADMIN_PATH) else PUBLIC_HEADERS)
    if request.is_secure or current_app.extensions["fallback"].settings.https_public_url:
        response.headers["Strict-Transport-Security"] = HSTS
    return response


class ForwardedWarning:
    """WSGI middleware, without trusted proxies: warn once per process that an X-Forwarded-For went unheard."""

    warned = False  # once per process, however many apps it builds

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Pass the request on, warning first if it is the first to come through a proxy nobody trusts."""
        if not ForwardedWarning.warned and "HTTP_X_FORWARDED_FOR" in environ:
            ForwardedWarning.warned = True
            log.warning(
                "a request came with X-Forwarded-For, but FALLBACK_TRUSTED_PROXIES is 0: every client behind that"
                " proxy shares its address, and so its rate limits and log-in budget. Set FALLBACK_TRUSTED_PROXIES"
                " to the number of proxies in front of fallback"
            )
        return self.wsgi_app(environ, start_response)
