"""Admin sessions that end: on log-out and a new admin password (every session at once), and 8 hours after log-in.

A session cookie is signed, so it cannot be forged, but a signed cookie alone cannot be revoked: one
copied from a browser would open the dashboard for as long as it is valid. So each session carries a
stamp, a keyed hash of the admin password and of a generation kept in the database. Log-out bumps the
generation and a new password changes the hash: every session opened before either, in every worker
and instance on the database, stops matching. The generation is read on every admin request (they are
rare): a worker that kept it even a second would let a copied cookie in right after the log-out.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from flask import Flask, Request, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin

from fallback.web.runtime import Runtime

ADMIN_PATH = "/_fallback/admin"
LIFETIME = timedelta(hours=8)
# A session "opened" a little in the future is still valid: instances' clocks may disagree a little.
CLOCK_SKEW_SECONDS = 60


def session_stamp(secret_key: str, password: str, generation: int) -> str:
    """What a valid session carries: a keyed hash of the admin password and the sessions' generation."""
    message = f"fallback admin session\0{generation}\0{password}".encode()
    return hmac.new(secret_key.encode("utf-8"), message, hashlib.sha256).hexdigest()[:32]


def current_stamp(rt: Runtime) -> str:
    """The stamp a session must carry now, with the generation as the database has it now."""
    return session_stamp(rt.secret_key, rt.settings.admin_password or "", rt.storage.session_generation())


def open_admin_session(rt: Runtime) -> None:
    """Start a new admin session: stamped now, and ending 8 hours from now whatever happens."""
    session.clear()
    session.permanent = True
    session["admin"] = True
    session["stamp"] = current_stamp(rt)
    session["since"] = int(rt.storage.clock().timestamp())


def has_admin_session(rt: Runtime) -> bool:
    """Whether the request's session is an admin's, with the current stamp, opened less than 8 hours ago."""
    if not session.get("admin"):
        return False
    since = session.get("since")
    now = rt.storage.clock().timestamp()
    if not isinstance(since, int) or not since - CLOCK_SKEW_SECONDS <= now < since + LIFETIME.total_seconds():
        return False
    return hmac.compare_digest(str(session.get("stamp", "")), current_stamp(rt))


def end_every_session(rt: Runtime) -> None:
    """Log out: this session and every other one, in every worker and instance."""
    rt.storage.end_sessions()
    session.clear()


class SessionInterface(SecureCookieSessionInterface):
    """The admin session: only the admin area opens it; its cookie is Secure over HTTPS and ends with it."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """Public pages never have a session: skip reading a cookie that cannot be there."""
        if not request.path.startswith(ADMIN_PATH):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure over HTTPS (directly, through a trusted proxy, or by FALLBACK_PUBLIC_URL), or when configured so."""
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    def get_expiration_time(self, app: Flask, session: SessionMixin) -> datetime | None:
        """The cookie expires 8 hours after log-in, not after the last request."""
        since = session.get("since")
        if isinstance(since, int):
            return datetime.fromtimestamp(since, tz=UTC) + LIFETIME
        return super().get_expiration_time(app, session)
