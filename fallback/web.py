"""Public views: the redirect or the contact page on visitor paths, the form, status endpoints."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from flask import Blueprint, Response, abort, make_response, redirect, render_template, request, send_file
from flask_babel import gettext, ngettext
from markupsafe import escape

from .brand import palette
from .checker import checker_problem, status_document
from .config import LOGO_TYPES
from .forms import CONSENT_TEXT, ContactForm, consent_version
from .guard import add_security_headers, is_cross_site, rate_check
from .i18n import current_language
from .runtime import runtime
from .state import Flag, utcnow
from .storage import NewLead, StorageError

log = logging.getLogger("fallback.web")

blueprint = Blueprint("web", __name__)

PREFIX = "/_fallback"
DEFAULT_RETRY_AFTER = 120
# Shared caches (a CDN, nginx) may hold the page 5 s to absorb a spike; browsers re-ask every time,
# so a visitor who reloads after recovery is redirected at once.
DOWN_PAGE_CACHE = "public, max-age=0, s-maxage=5"
TOKEN_MARK = "__fallback_form_token__"
PATH_MARK = "__fallback_landing_path__"
TOKEN_BYTES, PATH_BYTES = TOKEN_MARK.encode(), PATH_MARK.encode()
# Characters kept as they are in a redirected path; everything else is percent-encoded.
PATH_SAFE = "/!$&'()*+,;=:@-._~%"
VISITOR_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@blueprint.after_app_request
def security_headers(response: Response) -> Response:
    """Every answer carries the security headers."""
    return add_security_headers(response)


@blueprint.app_context_processor
def brand_context() -> dict:
    """What every template may show of the operator's brand."""
    settings = runtime().settings
    return {"site_name": settings.site_name, "contact_email": settings.contact_email, "has_logo": bool(settings.logo)}


@blueprint.app_errorhandler(413)
def too_large(error) -> Response:
    """A body over the limit: a short, clear refusal."""
    return Response("This request is too large.\n", 413, mimetype="text/plain")


@blueprint.route("/", defaults={"path": ""}, methods=VISITOR_METHODS)
@blueprint.route("/<path:path>", methods=VISITOR_METHODS)
def visitor(path: str) -> Response:
    """A visitor path: redirect to the main site while it is up, the contact page while it is down."""
    if request.path.startswith(PREFIX + "/") or request.path == PREFIX:
        abort(404)
    flag = runtime().flag.get()
    if flag.served_state(utcnow()) == "up":
        target = redirect_target()
        if target is not None:
            # No body: a redirect is all headers, and this is the hot path while the site is up.
            status = 302 if request.method in ("GET", "HEAD") else 307
            return Response(status=status, headers={"Location": target, "Cache-Control": "no-store"})
    return down_response(flag)


def redirect_target() -> str | None:
    """The same path and query on the main site, or None when that would loop back here."""
    main = urlsplit(runtime().settings.require_main_url())
    if (main.netloc or "").lower() == request.host.lower():
        return None
    path = main.path.rstrip("/") + "/" + quote(request.path.lstrip("/"), safe=PATH_SAFE)
    query = request.query_string.decode("latin-1")
    # Scheme and host always come from the main URL: the visitor's input is only ever a path.
    return urlunsplit((main.scheme, main.netloc, path, quote(query, safe="=&;%+/?:@!$'()*,-._~"), ""))


def back_in(flag: Flag) -> int | None:
    """Seconds until a forced `down` expires, the only time we know when the site returns; else None."""
    now = utcnow()
    if flag.mode_at(now) == "down" and flag.mode_until is not None:
        return max(1, math.ceil((flag.mode_until - now).total_seconds()))
    return None


def retry_after_seconds(flag: Flag) -> int:
    """Seconds a client should wait: until a forced mode expires, else a default."""
    return back_in(flag) or DEFAULT_RETRY_AFTER


def wants_json() -> bool:
    """Whether the client asked for JSON rather than HTML."""
    if "json" not in request.headers.get("Accept", ""):
        return False  # browsers and most bots: no need to parse the header
    best = request.accept_mimetypes.best_match(["text/html", "application/json"], default="text/html")
    return best == "application/json"


def down_response(flag: Flag) -> Response:
    """The 503 answer while the site is down: the contact page, or JSON for API clients."""
    seconds = retry_after_seconds(flag)
    if wants_json():
        body = json.dumps({"state": "down", "retry_after": seconds, "contact": PREFIX + "/contact"})
        response = Response(body, 503, mimetype="application/json")
    else:
        response = Response(page_bytes(flag), 503, mimetype="text/html")
    response.headers["Retry-After"] = str(seconds)
    response.headers["Cache-Control"] = DOWN_PAGE_CACHE
    response.vary.add("Accept")
    response.vary.add("Accept-Language")
    return response


def page_bytes(flag: Flag) -> bytes:
    """The contact page with a fresh form token and this visitor's path spliced in.

    The page is rendered once per flag change (and per minute of a forced expiry), then served
    as bytes: rendering the template and building the form on every request would cost more than
    everything else together.
    """
    rt = runtime()
    minutes = minutes_until(back_in(flag))
    key = (flag.version, minutes, current_language())
    page = rt.pages.get(key)
    if page is None:
        if len(rt.pages) >= 32:
            rt.pages.clear()
        form = ContactForm(require_consent=rt.settings.require_consent, data={"token": TOKEN_MARK, "path": PATH_MARK})
        page = rt.pages[key] = render_page(form, minutes).encode("utf-8")
    path = escape(request.full_path.rstrip("?") if request.query_string else request.path)
    return page.replace(TOKEN_BYTES, rt.tokens.issue().encode("ascii")).replace(PATH_BYTES, str(path).encode("utf-8"))


def minutes_until(seconds: int | None) -> int | None:
    """Whole minutes, rounded up, or None when unknown."""
    return None if seconds is None else max(1, math.ceil(seconds / 60))


def render_page(form: ContactForm, back_in_minutes: int | None, errors: bool = False) -> str:
    """Render the contact page template."""
    settings = runtime().settings
    return render_template(
        "page.html",
        form=form,
        errors=errors,
        headline=settings.headline,
        message=settings.message,
        back_in_minutes=back_in_minutes,
        consent_text=str(CONSENT_TEXT),
        require_consent=settings.require_consent,
    )


@blueprint.post(PREFIX + "/contact")
def contact() -> Response:
    """Store a visitor's details, then send them to the thank-you page."""
    rt = runtime()
    if is_cross_site():
        return Response("Forms may only be sent from this site's own pages.\n", 403, mimetype="text/plain")
    form = ContactForm(request.form, require_consent=rt.settings.require_consent)
    token_problem = None
    try:
        age = rt.tokens.age(form.token.data)
    except ValueError as problem:
        token_problem, age = str(problem), 0.0
    valid = not token_problem and form.validate()
    lead = new_lead(form, age) if valid else None
    try:
        # One transaction counts the attempt against the rate limit, then stores the lead if allowed.
        submission = rt.storage.submit(lead, rate_check(rt.settings, "contact"))
    except StorageError as error:
        log.error("a lead could not be saved: %s", error)
        return not_saved()
    if submission.retry_after is not None:
        return form_again(form, 429, retry_after=submission.retry_after)
    if not valid:
        return form_again(form, 400, token_problem=token_problem)
    # Committed above: only now may the visitor be thanked.
    return redirect(PREFIX + "/thanks", 303)


def new_lead(form: ContactForm, age: float) -> NewLead:
    """The lead a valid form describes; spam is recognised here and stored apart."""
    spam_reason = None
    if form.website.data:
        spam_reason = "honeypot"
    elif age < runtime().settings.form_min_seconds:
        spam_reason = f"sent {age:.1f}s after the page was shown"
    return NewLead(
        email=form.email.data,
        name=(form.name.data or "").strip(),
        message=(form.message.data or "").strip(),
        consent=bool(form.consent.data),
        consent_version=consent_version(current_language()),
        consent_text=str(CONSENT_TEXT),
        landing_path=form.landing_path(),
        language=current_language(),
        spam_reason=spam_reason,
    )


def form_again(form: ContactForm, status: int, token_problem: str | None = None,
               retry_after: float | None = None) -> Response:
    """The page again with the visitor's input kept: errors beside the fields, or when to send again; a fresh token."""
    rt = runtime()
    if token_problem:
        form.token.errors = [
            gettext("This form has expired. Please check your details and send it again.")
            if token_problem != "missing" or form.email.data else gettext("Please fill in the form below.")
        ]
    if retry_after is not None:
        form.token.errors = [gettext("You have sent this form many times in a short while. Please wait %(wait)s "
                                     "and send it again.", wait=wait_text(retry_after))]
    form.token.data = rt.tokens.issue()
    html = render_page(form, minutes_until(back_in(rt.flag.get())), errors=True)
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store"
    if retry_after is not None:
        response.headers["Retry-After"] = str(math.ceil(retry_after))
    return response


def wait_text(seconds: float) -> str:
    """`45 seconds`, `2 minutes`: how long to wait, for people."""
    seconds = math.ceil(seconds)
    if seconds < 90:
        return ngettext("%(num)d second", "%(num)d seconds", seconds)
    return ngettext("%(num)d minute", "%(num)d minutes", math.ceil(seconds / 60))


def not_saved() -> Response:
    """503 when the database refuses the lead: say so, and offer the contact address instead."""
    response = make_response(render_template("not_saved.html"), 503)
    response.headers["Retry-After"] = "60"
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get(PREFIX + "/thanks")
def thanks() -> Response:
    """The thank-you page."""
    response = make_response(render_template("thanks.html"))
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@blueprint.get(PREFIX + "/page.css")
def stylesheet() -> Response:
    """The page's stylesheet, from a template so that it can be rebranded."""
    rt = runtime()
    css = rt.pages.get("css")
    if css is None:
        css = rt.pages["css"] = render_template("page.css", colors=palette(rt.settings.brand_color)).encode()
    response = Response(css, mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@blueprint.get(PREFIX + "/logo")
def logo() -> Response:
    """The operator's logo (FALLBACK_LOGO), served from here: the page makes no request to another origin."""
    path = runtime().settings.logo
    if not path:
        abort(404)
    return send_file(path, mimetype=LOGO_TYPES[Path(path).suffix.lower()], max_age=3600)


@blueprint.get("/robots.txt")
def robots() -> Response:
    """Always 200: a 503 robots.txt would make search engines treat the whole site as blocked."""
    response = Response("User-agent: *\nDisallow: /_fallback/\n", mimetype="text/plain")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@blueprint.get(PREFIX + "/status.json")
def status() -> Response:
    """The flag as JSON: state, mode, since when, and what the checker is doing."""
    rt = runtime()
    try:
        document = status_document(rt.storage, rt.settings, utcnow())
    except StorageError as error:
        log.error("status unavailable: %s", error)
        document = {**rt.flag.get().as_status(utcnow()), "error": "the database could not be read"}
    response = Response(json.dumps(document), mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get(PREFIX + "/healthz")
def healthz() -> Response:
    """200 while the database is writable and the checker's heartbeat is fresh; 503 with the reason otherwise."""
    rt = runtime()
    try:
        rt.storage.check_writable()
        problem = checker_problem(rt.storage.checker(), rt.settings, utcnow())
    except StorageError as error:
        problem = str(error)
    if problem:
        response = Response(f"unhealthy: {problem}\n", 503, mimetype="text/plain")
    else:
        response = Response("ok\n", mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response
