"""The visitor's views: the redirect or the contact page on visitor paths, the waiting page, the form and thanks.

The page's files are served by fallback.visitor.assets, the public status and health by fallback.visitor.health.
"""

from __future__ import annotations

import json
import logging
import math
import random
from typing import TYPE_CHECKING

from flask import Blueprint, Response, abort, make_response, redirect, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext, ngettext
from werkzeug.datastructures import Headers

from fallback.core.admission import look_again_after
from fallback.core.clock import utcnow
from fallback.core.flag import back_in
from fallback.core.urls import redirect_location
from fallback.storage import StorageError
from fallback.visitor.contact import CONSENT_MESSAGE, FIELDS, NOTIFY_MESSAGE
from fallback.visitor.forms import ContactForm
from fallback.visitor.hotpath import (
    CONTACT_PATH,
    DOWN_PAGE_HEADERS,
    HOLDER_PAGE_HEADERS,
    PATH_MARK,
    PREFIX,
    REFRESH_MARK,
    SUBMITTED,
    THANKS_PATH,
    TOKEN_MARK,
    Answer,
    admitted,
    check_fields,
    down_retry_after,
    holds_place,
    landing_path,
    minutes_until,
    page_answer,
    page_key,
    redirect_answer,
    submit_lead,
    thanks_location,
)
from fallback.web.admission import Turn
from fallback.web.guard import is_cross_site
from fallback.web.languages import current_language, translate
from fallback.web.runtime import runtime

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

log = logging.getLogger("fallback.web")

blueprint = Blueprint("web", __name__)

VISITOR_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@blueprint.route("/", defaults={"path": ""}, methods=VISITOR_METHODS)
@blueprint.route("/<path:path>", methods=VISITOR_METHODS)
def visitor(path: str) -> Response:
    """A visitor path: redirect to the main site while it is up, the contact page while it is down.

    GET and HEAD are usually answered by the WSGI fast path (fallback.visitor.HotPath) with the
    same functions; they reach this view for the first page of a flag version, or for JSON.
    """
    if request.path.startswith(PREFIX + "/") or request.path == PREFIX:
        abort(404)
    rt = runtime()
    now = utcnow()
    flag = rt.flag.get()
    if flag.served_state(now) == "up":
        location = redirect_location(rt.settings.require_main_url(), request.path, request.query_string, request.host)
        if location is not None:
            turn = admitted(rt, request.environ)
            if not turn.admitted:
                return waiting_answer(turn)
            return prepared(redirect_answer(location, request.method, turn.cookie))
    back = back_in(flag, now)
    holder = holds_place(rt, request.environ)
    if wants_json():
        seconds = down_retry_after(back, holder)
        body = json.dumps({"state": "down", "retry_after": seconds, "contact": PREFIX + "/contact"}).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Retry-After", str(seconds)),
            *(HOLDER_PAGE_HEADERS if holder else DOWN_PAGE_HEADERS),
        ]
        return prepared(Answer(503, headers, body))
    key = page_key(flag, back, current_language())
    page = rt.pages.get(key)
    if page is None:
        if len(rt.pages) >= 32:
            rt.pages.clear()
        form = ContactForm(data={"token": TOKEN_MARK, "path": PATH_MARK})
        page = rt.pages[key] = render_page(form, minutes_until(back), live=REFRESH_MARK).encode("utf-8")
    landing = landing_path(request.path, request.query_string)
    return prepared(page_answer(page, rt.tokens.issue(), landing, back, holder))


def waiting_answer(turn: Turn) -> Response:
    """503 for a visitor waiting their turn: their place and wait on the page (or in JSON), never cached."""
    rt = runtime()
    if wants_json():
        body = json.dumps({"state": "waiting", "place_in_line": turn.ahead + 1, "retry_after": turn.retry_after})
        response = Response(body, 503, mimetype="application/json")
    else:
        form = ContactForm(data={"token": rt.tokens.issue(), "path": landing_path(request.path, request.query_string)})
        waiting = {"position": turn.ahead + 1, "wait": wait_text(turn.wait)}
        # The live page looks again by their turn, to the millisecond: the answer then says go, or how much longer.
        live = f"{look_again_after(turn.wait, random.random()):.3f}"
        response = make_response(render_page(form, None, live=live, waiting=waiting), 503)
    response.headers["Retry-After"] = str(turn.retry_after)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Accept, Accept-Language, Cookie"
    if turn.cookie:
        response.headers["Set-Cookie"] = turn.cookie
    return response


class PreparedResponse(Response):
    """An answer whose headers are final as built: security headers, an ASCII Location, a length.

    Werkzeug would otherwise copy the headers and re-encode the Location on every request.
    """

    secured = True

    def get_wsgi_headers(self, environ: WSGIEnvironment) -> Headers:
        """The headers, as they are."""
        return self.headers


def prepared(answer: Answer) -> Response:
    """A Flask response for an answer computed by fallback.visitor."""
    return PreparedResponse(answer.body, answer.status, answer.headers)


def wants_json() -> bool:
    """Whether the client asked for JSON rather than HTML."""
    if "json" not in request.environ.get("HTTP_ACCEPT", ""):
        return False  # browsers and most bots: no need to parse the header
    best = request.accept_mimetypes.best_match(["text/html", "application/json"], default="text/html")
    return best == "application/json"


def render_page(
    form: ContactForm,
    back_in_minutes: int | None,
    errors: bool = False,
    live: str | None = None,
    waiting: dict | None = None,
) -> str:
    """Render the contact page template; `live`: the seconds after which it looks again (none on a form sent
    back); `waiting`: a visitor waiting their turn (admission), their place and wait."""
    settings = runtime().settings
    return render_template(
        "page.html",
        form=form,
        errors=errors,
        headline=settings.headline,
        message=settings.message,
        back_in_minutes=back_in_minutes,
        waiting=waiting,
        consent_text=translate(CONSENT_MESSAGE, current_language()),
        require_consent=settings.require_consent,
        notify_text=translate(NOTIFY_MESSAGE, current_language()) if settings.smtp_url else None,
        # The only admin-written text the public sees: autoescaped like everything else.
        notice=runtime().flag.get().notice,
        live=live,
    )


@blueprint.post(CONTACT_PATH)
def contact() -> ResponseReturnValue:
    """Store a visitor's details, then send them to the thank-you page; or say what is wrong."""
    rt = runtime()
    if is_cross_site():
        rt.metrics.lead(None)
        return Response("Forms may only be sent from this site's own pages.\n", 403, mimetype="text/plain")
    checked = check_fields(rt, {name: request.form.get(name, "") for name in FIELDS}, current_language())
    # A valid post the lean path already submitted (and was limited or not saved) is not counted twice.
    submitted = request.environ.get(SUBMITTED) or submit_lead(rt, checked, request.remote_addr)
    if isinstance(submitted, StorageError):
        return not_saved()
    form = ContactForm(request.form)
    if submitted.retry_after is not None:
        rt.metrics.limited()
        return form_again(form, 429, retry_after=submitted.retry_after)
    # Counted here, not by the lean path, which only counts the posts it answers itself.
    rt.metrics.lead(checked.lead)
    if checked.lead is None:
        form.show_errors(checked.errors)
        return form_again(form, 400, token_problem=checked.token_problem)
    # Committed above: only now may the visitor be thanked.
    return redirect(thanks_location(checked.lead.notify), 303)


def form_again(
    form: ContactForm, status: int, token_problem: str | None = None, retry_after: float | None = None
) -> Response:
    """The page again with the visitor's input kept: errors beside the fields, or when to send again; a fresh token."""
    rt = runtime()
    if token_problem:
        form.token.errors = [
            gettext("This form has expired. Please check your details and send it again.")
            if token_problem != "missing" or form.email.data
            else gettext("Please fill in the form below.")
        ]
    if retry_after is not None:
        form.token.errors = [
            gettext(
                "You have sent this form many times in a short while. Please wait %(wait)s and send it again.",
                wait=wait_text(retry_after),
            )
        ]
    form.token.data = rt.tokens.issue()
    html = render_page(form, minutes_until(back_in(rt.flag.get(), utcnow())), errors=True)
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


@blueprint.get(THANKS_PATH)
def thanks() -> Response:
    """The thank-you page; it says the follow-up mail will come when the visitor asked for it."""
    response = make_response(render_template("thanks.html", notify=request.args.get("notify") == "1"))
    response.headers["Cache-Control"] = "public, max-age=60"
    response.headers["Vary"] = "Accept-Language"  # a shared cache keeps one page per language
    return response
