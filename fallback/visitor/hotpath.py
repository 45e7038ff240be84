"""What a visitor path answers, as plain values, and the WSGI fast path that serves it.

The two answers a TV spike is made of, the redirect while up and the contact page while
down, are computed here without Flask: the flag comes from the worker's memory, the page
from bytes rendered once per flag change and language, with a fresh signed token and the
visitor's path spliced in. `HotPath` answers those requests before Flask's request
machinery runs; anything else (a page not rendered yet, JSON, other methods, the app's own
routes) goes on to Flask, whose views use the same functions.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from markupsafe import escape

from fallback.checking.selfprobe import ENVIRON_KEY as PROBE_CHALLENGE
from fallback.checking.selfprobe import marking, probe_key
from fallback.core.clock import utcnow
from fallback.core.flag import DEFAULT_RETRY_AFTER, Flag, back_in
from fallback.core.urls import redirect_location
from fallback.storage import NewLead, StorageError, Submission
from fallback.visitor.contact import CONSENT_MESSAGE, FIELDS, NOTIFY_MESSAGE, ContactCheck, check_contact
from fallback.visitor.drillmark import drill_key
from fallback.web.admission import ALREADY_ADMITTED, Turn
from fallback.web.guard import HSTS, PUBLIC_HEADERS, client_key_for, cross_site, rate_check_for
from fallback.web.languages import LANGUAGE_FIELD, language_from, language_of, translate
from fallback.web.runtime import PageKey, Runtime

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication

log = logging.getLogger("fallback.web")

PREFIX = "/_fallback"
# Shared caches (a CDN, nginx) may hold the page 5 s to absorb a spike; browsers re-ask every time,
# so a visitor who reloads after recovery is redirected at once.
DOWN_PAGE_CACHE = "public, max-age=0, s-maxage=5"
TOKEN_MARK = "__fallback_form_token__"
PATH_MARK = "__fallback_landing_path__"
REFRESH_MARK = "919191919"  # digits, so that the template renders it like the number it stands for
_TOKEN_BYTES, _PATH_BYTES, _REFRESH_BYTES = TOKEN_MARK.encode(), PATH_MARK.encode(), REFRESH_MARK.encode()
DOWN_PAGE_HEADERS = (("Cache-Control", DOWN_PAGE_CACHE), ("Vary", "Accept, Accept-Language"), *PUBLIC_HEADERS)
# The down page of a visitor holding a place in line is theirs alone: its delay is shorter (HOLDER_RETRY_AFTER).
HOLDER_PAGE_HEADERS = (("Cache-Control", "no-store"), *PUBLIC_HEADERS)
REDIRECT_HEADERS = (("Cache-Control", "no-store"), *PUBLIC_HEADERS)
STATUS_LINES = {302: "302 Found", 303: "303 See Other", 307: "307 Temporary Redirect", 503: "503 Service Unavailable"}
CONTACT_PATH = PREFIX + "/contact"
THANKS_PATH = PREFIX + "/thanks"
# Where the lean contact path leaves what it did for the Flask view, so that nothing is counted twice.
SUBMITTED = "fallback.submitted"
# Where the hot path leaves a waiting visitor's turn for the Flask view that renders their page.
TURN = "fallback.turn"
MAX_FORM_BYTES = 64 * 1024
# The thank-you page says so when the visitor asked to be e-mailed once the site is back.
NOTIFY_QUERY = "notify=1"
# A visitor holding a place in line who gets the down page (the main site fell while they waited) looks again
# after about this many seconds rather than the page's usual two minutes: the gate keeps their place through the
# outage and reopens, paced, once the checker sees the site back, so they should be there to take their turn.
# Only fallback answers these looks, from memory.
HOLDER_RETRY_AFTER = 15


def thanks_location(notify: bool) -> str:
    """Where a stored lead is thanked: the thank-you page, told whether the visitor asked for the follow-up mail."""
    return f"{THANKS_PATH}?{NOTIFY_QUERY}" if notify else THANKS_PATH


# Built once: the lean path answers every accepted post with one of these two.
THANKS_HEADERS = {
    notify: [("Location", thanks_location(notify)), ("Content-Length", "0"), *PUBLIC_HEADERS]
    for notify in (False, True)
}


@dataclasses.dataclass(frozen=True)
class Answer:
    """A complete HTTP answer: status, final headers (security headers included), body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def redirect_answer(location: str, method: str, cookie: str | None = None) -> Answer:
    """302 to the main site (307 for methods with a body, so that it is sent again), no body, no cache."""
    status = 302 if method in ("GET", "HEAD") else 307
    headers = [("Location", location), ("Content-Length", "0"), *REDIRECT_HEADERS]
    if cookie is not None:
        headers.append(("Set-Cookie", cookie))
    return Answer(status, headers, b"")


def admitted(rt: Runtime, environ: dict) -> Turn:
    """Whether this visitor goes on now (always, without admission); decided once per request."""
    if rt.admission is None:
        return ALREADY_ADMITTED
    turn = environ.get(TURN)
    if turn is None:
        turn = environ[TURN] = rt.admission.turn(environ.get("HTTP_COOKIE", ""))
    return turn


def minutes_until(seconds: int | None) -> int | None:
    """Whole minutes, rounded up, or None when unknown."""
    return None if seconds is None else max(1, math.ceil(seconds / 60))


def page_key(flag: Flag, back: int | None, language: str) -> PageKey:
    """What the rendered page depends on: the flag's version, the minutes until back, the language."""
    return PageKey(flag.version, minutes_until(back), language)


def refresh_after(retry_after: int) -> int:
    """When this visitor's page looks again: Retry-After give or take 30%, so that open tabs do not return at once."""
    return max(1, round(retry_after * (0.7 + 0.6 * random.random())))


def down_retry_after(back: int | None, holds_place: bool) -> int:
    """The down page's Retry-After: until a forced `down` runs out, else two minutes; shorter for a place holder."""
    seconds = back or DEFAULT_RETRY_AFTER
    return min(seconds, HOLDER_RETRY_AFTER) if holds_place else seconds


def holds_place(rt: Runtime, environ: dict) -> bool:
    """Whether this visitor holds a place in line (a valid place cookie, not yet sent on); the cookie alone says."""
    return rt.admission is not None and rt.admission.holds_place(environ.get("HTTP_COOKIE", ""))


def page_answer(page: bytes, token: str, landing: str, back: int | None, holder: bool = False) -> Answer:
    """The 503 contact page: the cached bytes with this visitor's token, landing path and refresh delay spliced in.

    A place holder's page is not for shared caches: its delay is theirs."""
    retry_after = down_retry_after(back, holder)
    refresh = str(refresh_after(retry_after)).encode()
    body = (
        page.replace(_TOKEN_BYTES, token.encode("ascii"))
        .replace(_PATH_BYTES, str(escape(landing)).encode())
        .replace(_REFRESH_BYTES, refresh)
    )
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Retry-After", str(retry_after)),
        *(HOLDER_PAGE_HEADERS if holder else DOWN_PAGE_HEADERS),
    ]
    return Answer(503, headers, body)


def landing_path(path: str, query: bytes) -> str:
    """The path and query the visitor asked for, as the form records it."""
    return path + "?" + query.decode("utf-8", "replace") if query else path


def check_fields(rt: Runtime, fields: dict[str, str], language: str) -> ContactCheck:
    """The contact form's fields checked against this app's settings and token signer."""
    try:
        age, problem = rt.tokens.age(fields.get("token")), None
    except ValueError as refused:
        age, problem = None, str(refused)
    return check_contact(
        fields,
        token_age=age,
        token_problem=problem,
        require_consent=rt.settings.require_consent,
        min_seconds=rt.settings.form_min_seconds,
        language=language,
        consent_text=translate(CONSENT_MESSAGE, language),
        notify_text=translate(NOTIFY_MESSAGE, language) if rt.settings.smtp_url else None,
        drill_key=drill_key(rt.secret_key),
    )


def submit_lead(rt: Runtime, checked: ContactCheck, client: str | None) -> Submission | StorageError:
    """Count the attempt against the client's limit and store the lead if allowed: committed on return."""
    rate = rate_check_for(rt.settings, "contact", client_key_for(rt.secret_key, client))
    try:
        # One transaction counts the attempt against the rate limit, then stores the lead if allowed.
        return rt.storage.leads.submit(checked.lead, rate)
    except StorageError as error:
        log.error("a lead could not be saved: %s", error)
        return error


def form_fields(body: bytes) -> dict[str, str]:
    """The contact form's fields from an urlencoded body, the first value of each (as Flask reads them)."""
    fields: dict[str, str] = {}
    for name, value in parse_qsl(body.decode(), keep_blank_values=True):
        if name in FIELDS:
            fields.setdefault(name, value)
    return fields


class HotPath:
    """WSGI middleware answering GET and HEAD on visitor paths, and valid contact posts, without entering Flask."""

    def __init__(self, flask_wsgi: WSGIApplication, rt: Runtime) -> None:
        self.flask_wsgi = flask_wsgi
        self.rt = rt
        self.always_https = rt.settings.https_public_url
        self.probe_key = probe_key(rt.secret_key)

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        """Answer a visitor's GET or HEAD from memory; hand every other request to Flask."""
        challenge = environ.get(PROBE_CHALLENGE)
        if challenge is not None:
            # A checker's probe: whatever answers it (here or in Flask) says it was fallback (fallback.selfprobe).
            start_response = marking(start_response, self.probe_key, challenge)
        method = environ.get("REQUEST_METHOD")
        raw_path = environ.get("PATH_INFO") or "/"
        if (
            method in ("GET", "HEAD")
            and not raw_path.startswith(PREFIX)
            and raw_path != "/robots.txt"
            and "json" not in environ.get("HTTP_ACCEPT", "")
        ):
            answer = self.answer(environ, method, raw_path)
            if answer is not None:
                start_response(STATUS_LINES[answer.status], self.secured(environ, answer.headers))
                return [] if method == "HEAD" else [answer.body]
        elif method == "POST" and raw_path == CONTACT_PATH and (lead := self.contact(environ)) is not None:
            start_response(STATUS_LINES[303], self.secured(environ, THANKS_HEADERS[lead.notify]))
            return []
        return self.flask_wsgi(environ, start_response)

    def secured(self, environ: dict, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """`headers`, with HSTS over HTTPS: as this request came, or as FALLBACK_PUBLIC_URL says visitors come."""
        if self.always_https or environ.get("wsgi.url_scheme") == "https":
            return [*headers, ("Strict-Transport-Security", HSTS)]
        return headers

    def contact(self, environ: dict) -> NewLead | None:
        """Store a valid contact post and return its lead; otherwise None, leaving it to the Flask view, body intact.

        Whatever is not the common case (a cross-site post, another encoding, an invalid field, the
        rate limit, a database error) is rendered by `web.contact`, which calls the same functions.
        """
        if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded") or cross_site(
            environ.get("HTTP_SEC_FETCH_SITE"), environ.get("HTTP_ORIGIN"), environ.get("HTTP_HOST", "")
        ):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            return None
        if not 0 <= length <= MAX_FORM_BYTES:
            return None
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            fields = form_fields(body)
        except UnicodeDecodeError:
            return None
        language = language_of(fields.get(LANGUAGE_FIELD), environ.get("HTTP_ACCEPT_LANGUAGE"))
        checked = check_fields(self.rt, fields, language)
        if checked.lead is None:
            return None
        submitted = submit_lead(self.rt, checked, environ.get("REMOTE_ADDR"))
        if isinstance(submitted, Submission) and submitted.retry_after is None:
            self.rt.metrics.lead(checked.lead)
            return checked.lead
        environ[SUBMITTED] = submitted
        return None

    def answer(self, environ: dict, method: str, raw_path: str) -> Answer | None:
        """The redirect or the cached page, or None when Flask must render the page first."""
        now = utcnow()
        flag = self.rt.flag.get()
        # WSGI hands the path over as latin-1; browsers send UTF-8.
        path = raw_path.encode("latin-1").decode("utf-8", "replace")
        query = environ.get("QUERY_STRING", "").encode("latin-1")
        if flag.served_state(now) == "up":
            location = redirect_location(self.rt.settings.require_main_url(), path, query, environ.get("HTTP_HOST", ""))
            if location is not None:
                turn = admitted(self.rt, environ)
                # A waiting visitor's page is rendered by the Flask view, with their place and wait.
                return redirect_answer(location, method, turn.cookie) if turn.admitted else None
        back = back_in(flag, now)
        page = self.rt.pages.get(page_key(flag, back, language_from(environ.get("HTTP_ACCEPT_LANGUAGE"))))
        if page is None:
            return None
        holder = holds_place(self.rt, environ)
        return page_answer(page, self.rt.tokens.issue(), landing_path(path, query), back, holder)
