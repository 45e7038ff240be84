"""The control API, `/_fallback/api/v1/`: status, mode, leads and erasure, as JSON behind a bearer token.

Every error is an RFC 9457 problem (`application/problem+json`). Without FALLBACK_API_TOKEN the API does
not exist (404). Tokens go through the one guard of fallback.team.tokens: only wrong ones spend the
failure budgets, and a right one is never refused for others' failures.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, g, request
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeSerializer
from werkzeug.exceptions import HTTPException

from fallback.checking.quorum import fresh_seconds
from fallback.checking.status import status_document
from fallback.checking.vantage import MAX_BODY, BadVerdict, read_report
from fallback.core.clock import utcnow
from fallback.core.durations import parse_duration
from fallback.core.flag import MODES
from fallback.storage import StorageError
from fallback.team.export import parse_bound
from fallback.team.modes import change_mode, change_notice
from fallback.team.openapi import document as openapi_document
from fallback.team.problems import Problem, json_object, problem_response
from fallback.team.tokens import Refusal, bearer_token, check_secret
from fallback.web.runtime import runtime

log = logging.getLogger("fallback.api")

PREFIX = "/_fallback/api/v1"
blueprint = Blueprint("api", __name__, url_prefix=PREFIX)

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
MAX_REASON = 200  # as the dashboard's mode form
MODE_FIELDS = frozenset({"mode", "for", "reason"})
ROUTES = {
    "status": ("GET",),
    "mode": ("PUT",),
    "leads": ("GET", "DELETE"),
    "openapi.json": ("GET",),
    "verdicts": ("POST",),
    "notice": ("PUT",),
    "spam": ("GET",),
    "spam/keep": ("POST",),
}


def cursor_signer() -> URLSafeSerializer:
    """Signs the leads cursor, so that a client cannot forge one (it holds only the last id)."""
    return URLSafeSerializer(runtime().secret_key, salt="fallback.api.leads-cursor")


@blueprint.before_request
def authenticate() -> None:
    """404 without FALLBACK_API_TOKEN; else the token or 401, a 429 once an address has failed too often."""
    rt = runtime()
    if not rt.settings.api_token:
        abort(404)
    role = check_secret(rt, bearer_token(), {"api": rt.settings.api_token, "export": rt.settings.export_token}, "token")
    if isinstance(role, Refusal):
        if role.status == 429:
            raise Problem(429, "too-many-attempts", "Too many wrong tokens", role.detail, role.headers)
        raise Problem(
            401,
            "unauthorized",
            "Unauthorized",
            f"{role.detail}: send Authorization: Bearer <FALLBACK_API_TOKEN>",
            {"WWW-Authenticate": 'Bearer realm="fallback api"'},
        )
    g.api_role = role
    if g.api_role == "export" and not (request.endpoint == "api.leads" and request.method == "GET"):
        raise Problem(403, "forbidden", "Forbidden", "the export token may only read leads (GET leads)")


@blueprint.after_request
def never_cache(response: Response) -> Response:
    """API answers hold private data and change at once: no cache may keep them."""
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.errorhandler(Problem)
def answer_problem(problem: Problem) -> Response:
    """A client error, as its problem document."""
    return problem_response(problem)


@blueprint.errorhandler(StorageError)
def database_unavailable(error: StorageError) -> Response:
    """The database cannot be read or written: a 503 problem, the details in the log."""
    log.error("API request refused, the database is unavailable: %s", error)
    detail = "the database is unavailable; try again shortly"
    return problem_response(Problem(503, "database-unavailable", "Database unavailable", detail, {"Retry-After": "30"}))


@blueprint.errorhandler(HTTPException)
def http_error(error: HTTPException) -> ResponseReturnValue:
    """Werkzeug's errors inside the API (a body too large, a bad request) as problems; 404 stays bare."""
    if error.code == 404 and not runtime().settings.api_token:
        return error  # the API does not exist: the same 404 as any unknown path
    code = error.code or 400
    title = error.name or "Error"
    return problem_response(Problem(code, title.lower().replace(" ", "-"), title, error.description or title))


@blueprint.get("/status")
def status() -> ResponseReturnValue:
    """The full status document: state, mode, since when, checker, incident, counts."""
    rt = runtime()
    return status_document(rt.storage, rt.settings, utcnow())


@blueprint.put("/mode")
def mode() -> ResponseReturnValue:
    """Force the page on (`down`), off (`up`), or hand back to the checker (`auto`), optionally for a while."""
    body = json_object()
    unknown = sorted(set(body) - MODE_FIELDS)
    if unknown:
        raise Problem(400, "unknown-fields", "Unknown fields", f"unknown fields: {', '.join(unknown)}")
    chosen, duration, reason = body.get("mode"), body.get("for"), body.get("reason")
    if chosen not in MODES:
        raise Problem(400, "bad-mode", "Unknown mode", f"mode must be one of {', '.join(MODES)}, got {chosen!r}")
    if duration is not None and chosen == "auto":
        raise Problem(400, "bad-duration", "Bad duration", "for only applies to up or down")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise Problem(400, "bad-reason", "Bad reason", f"reason must be text of at most {MAX_REASON} characters")
    if duration is not None and not isinstance(duration, str):
        raise Problem(400, "bad-duration", "Bad duration", 'for must be a text such as "30m" or "2h"')
    try:
        # The project's one duration parser, as the CLI's --for and the settings: "90s", "30m", "2h", "1h30m".
        until = utcnow() + parse_duration(duration) if duration is not None else None
    except ValueError as error:
        raise Problem(400, "bad-duration", "Bad duration", f"for: {error}") from None
    rt = runtime()
    flag = change_mode(rt.storage, chosen, until=until, reason=reason or None, by="api")
    # This worker at once; the others re-read the flag within their cache's TTL (under a second).
    rt.flag.invalidate()
    rt.status.invalidate()
    now = utcnow()
    changed = flag.mode_changed_at
    return {**flag.as_status(now), "by": flag.mode_by, "changed_at": changed.isoformat() if changed else None}


@blueprint.put("/notice")
def notice() -> ResponseReturnValue:
    """Set the public notice shown on the page (`{"text": "..."}`); empty text clears it."""
    body = json_object()
    unknown = sorted(set(body) - {"text"})
    if unknown:
        raise Problem(400, "unknown-fields", "Unknown fields", f"unknown fields: {', '.join(unknown)}")
    text = body.get("text")
    if not isinstance(text, str):
        raise Problem(400, "bad-notice", "Bad notice", 'text must be a text, "" to clear the notice')
    rt = runtime()
    try:
        flag = change_notice(rt.storage, text, by="api")
    except ValueError as error:
        raise Problem(400, "bad-notice", "Bad notice", str(error)) from None
    rt.flag.invalidate()
    return {"notice": flag.notice}


def limit_argument() -> int:
    """The `limit` query argument: 1 to MAX_LIMIT leads, DEFAULT_LIMIT when absent."""
    text = request.args.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise Problem(400, "bad-limit", "Bad limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


@blueprint.get("/leads")
def leads() -> ResponseReturnValue:
    """A page of genuine leads, oldest first, each with its messages, and the cursor of the next page or null."""
    limit = limit_argument()
    try:
        since = parse_bound(request.args.get("since"), "since")
    except ValueError as error:
        raise Problem(400, "bad-since", "Bad since", str(error)) from None
    cursor = request.args.get("cursor")
    after = 0
    if cursor:
        try:
            after = cursor_signer().loads(cursor)["after"]
        except (BadSignature, KeyError, TypeError):
            raise Problem(400, "bad-cursor", "Bad cursor", "the cursor was not one this API gave") from None
    page = runtime().storage.leads.after(after, limit, since)
    # A full page may have a next one; a short one is the end for now (new leads come after the last id).
    next_cursor = cursor_signer().dumps({"after": page[-1]["id"]}) if len(page) == limit else None
    return {"leads": page, "next": next_cursor}


@blueprint.delete("/leads")
def forget() -> ResponseReturnValue:
    """Erase every lead of one address (case-insensitive), spam included; how many were erased."""
    email = (request.args.get("email") or "").strip()
    if not email:
        raise Problem(400, "bad-email", "Bad email", "give the address to forget: DELETE leads?email=...")
    try:
        erased = runtime().storage.leads.forget(email)
    except StorageError as error:  # not erased for real: say why, so that the caller sends it again
        log.error("API erasure not finished: %s", error)
        detail = f"not fully erased: {error}; send this request again to finish the erasure"
        raise Problem(503, "erasure-blocked", "Erasure not finished", detail, {"Retry-After": "5"}) from None
    log.info("%d lead(s) erased through the API", erased)
    return {"email": email, "erased": erased}


@blueprint.get("/spam")
def spam() -> ResponseReturnValue:
    """The latest suspected spam (up to `limit`), newest first, each with why it was held back."""
    return {"spam": runtime().storage.spam.list(limit_argument())}


@blueprint.post("/spam/keep")
def keep_spam() -> ResponseReturnValue:
    """Make the suspected spam of one address a real lead ("not spam"); how many submissions were kept."""
    body = json_object()
    email = body.get("email")
    if set(body) != {"email"} or not isinstance(email, str) or not email.strip():
        raise Problem(400, "bad-email", "Bad email", 'send {"email": "..."}: the address whose spam to keep')
    kept = runtime().storage.spam.keep(email)
    log.info("%d suspected spam kept as a lead through the API", kept)
    return {"email": email.strip(), "kept": kept}


@blueprint.post("/verdicts")
def verdicts() -> ResponseReturnValue:
    """A probe agent's verdict, stored under its name in place of its last one; what the agent should know."""
    rt = runtime()
    try:
        report = read_report(json_object(MAX_BODY), rt.storage.clock())
    except BadVerdict as error:
        raise Problem(400, error.slug, "Bad verdict", str(error)) from None
    stored = rt.storage.verdicts.record(report.name, "agent", report.state, report.ok, report.reason, report.at)
    if stored is None:
        # An instance's own vote is not an agent's to replace, whoever holds the token.
        detail = f"{report.name!r} names an instance of this fallback: give the agent another --name"
        raise Problem(409, "name-taken", "Name taken", detail)
    if stored.first_seen_at == stored.received_at:  # a row just made: nothing of this name had reported
        log.info("probe agent %r reports for the first time, from %s", report.name, request.remote_addr)
    interval = rt.settings.check_interval
    # What the checker counting the votes calls fresh: an agent that reports less often than this is not counted.
    fresh_for = fresh_seconds(interval, rt.settings.check_timeout)
    return {
        "name": stored.name,
        "kind": stored.kind,
        "state": stored.state,
        "ok": stored.ok,
        "reason": stored.reason,
        "at": stored.observed_at.isoformat(),
        "received_at": stored.received_at.isoformat(),
        "check_interval": interval,
        "fresh_for": fresh_for,
        "quorum": rt.settings.quorum,
    }


@blueprint.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """The OpenAPI 3.1 document of this API."""
    return openapi_document()


@blueprint.route("/<path:rest>", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def elsewhere(rest: str) -> ResponseReturnValue:
    """A path the API does not have (404), or a method a route does not take (405), as problems."""
    allowed = ROUTES.get(rest)
    if allowed:
        detail = f"{rest} takes {', '.join(allowed)}"
        raise Problem(405, "method-not-allowed", "Method not allowed", detail, {"Allow": ", ".join(allowed)})
    raise Problem(404, "not-found", "Not found", f"no such API route: {rest}; see {PREFIX}/openapi.json")
