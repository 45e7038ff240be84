"""Admin views: log-in, the dashboard with the mode toggle, and the CSV export."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator
from datetime import datetime, timedelta

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from fallback.checking.status import status_document
from fallback.core.clock import utcnow
from fallback.core.redact import redact_url
from fallback.storage import Message, Storage, StorageError
from fallback.team.charts import latency_chart, rate_chart
from fallback.team.export import csv_chunks, parse_bound
from fallback.team.forms import DURATION_CHOICES, MODE_CHOICES, LoginForm, LogoutForm, ModeForm
from fallback.team.plain_errors import plain_error
from fallback.team.sessions import end_every_session, has_admin_session, open_admin_session
from fallback.team.tokens import Refusal, bearer_token, check_secret
from fallback.web.guard import is_cross_site
from fallback.web.runtime import runtime

log = logging.getLogger("fallback.admin")

blueprint = Blueprint("admin", __name__, url_prefix="/_fallback/admin")

LEADS_PER_PAGE = 25
WEBHOOKS_SHOWN = 20
ADMISSION_CHART_MINUTES = 10


def text_response(text: str, status: int, headers: dict[str, str] | None = None) -> Response:
    """A plain-text answer: nothing in it can be read as markup, whatever it quotes from the request."""
    return Response(text, status, headers, mimetype="text/plain")


def is_admin() -> bool:
    """Whether this request carries a valid admin session (see fallback.sessions)."""
    return has_admin_session(runtime())


def csrf_meta() -> dict:
    """WTForms meta options that tie CSRF tokens to the admin session."""
    return {"csrf_secret": str(current_app.config["SECRET_KEY"]).encode("utf-8"), "csrf_context": session}


@blueprint.before_request
def require_password_setting() -> Response | None:
    """Without FALLBACK_ADMIN_PASSWORD the admin area does not exist (the export token still works)."""
    if not runtime().settings.admin_password and request.endpoint != "admin.export_csv":
        abort(404)
    if request.method == "POST" and is_cross_site():
        return text_response("Admin forms may only be sent from the admin pages.\n", 403)
    if session.get("admin") and not is_admin():
        session.clear()  # ended (log-out, new password, 8 hours): the browser drops the cookie
    return None


@blueprint.after_request
def never_cache(response: Response) -> Response:
    """Admin pages hold private data: no cache may keep them."""
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/app.js")
def script() -> Response:
    """The dashboard's small script: it refreshes the state tiles from the admin's status.json."""
    response = make_response(render_template("admin.js"))
    response.mimetype = "text/javascript"
    return response


@blueprint.get("/status.json")
def full_status() -> ResponseReturnValue:
    """The full status document, for a logged-in admin: reasons, checker, incident, counts."""
    if not is_admin():
        return redirect(url_for("admin.dashboard"))
    rt = runtime()
    return make_response(status_document(rt.storage, rt.settings, utcnow()))


def admission_chart(storage: Storage, ceiling: float | None, now: datetime) -> Markup:
    """The rate in force over the last ADMISSION_CHART_MINUTES, while FALLBACK_ADMIT_RATE is set."""
    if ceiling is None:
        return Markup("")
    return rate_chart(storage.admission.samples(now - timedelta(minutes=ADMISSION_CHART_MINUTES)), ceiling)


@blueprint.app_template_filter("plain_error")
def plain_error_filter(raw: str | None) -> str:
    """A recorded failure as a sentence a person can act on (fallback.team.plain_errors)."""
    return plain_error(raw)


@blueprint.get("")
@blueprint.get("/")
def dashboard() -> Response | str:
    """The dashboard, or the log-in form."""
    if not is_admin():
        return render_template("admin/login.html", form=LoginForm(meta=csrf_meta()))
    rt = runtime()
    now = utcnow()
    status = status_document(rt.storage, rt.settings, now)
    query = request.args.get("q", "")[:200]
    page = request.args.get("page", 1, type=int) or 1
    page = max(1, min(page, 10_000))
    leads, total = rt.storage.leads.search(query, LEADS_PER_PAGE, (page - 1) * LEADS_PER_PAGE)
    probes = rt.storage.checker.recent_probes(60)
    return render_template(
        "admin/dashboard.html",
        status=status,
        chart=latency_chart(probes, rt.settings.max_latency * 1000),
        admission_chart=admission_chart(rt.storage, rt.settings.admit_rate, now),
        today=now.date().isoformat(),
        counts={"leads": status["leads"], "spam": status["spam"]},
        incidents=rt.storage.flag.incidents(10),
        leads=leads,
        total=total,
        query=query,
        page=page,
        pages=max(1, math.ceil(total / LEADS_PER_PAGE)),
        spam=rt.storage.spam.list(20),
        changes=rt.storage.flag.mode_changes(10),
        deliveries=recent_deliveries(rt.storage) if rt.settings.webhook_urls else None,
        mode_form=ModeForm(meta=csrf_meta()),
        logout_form=LogoutForm(meta=csrf_meta()),
        durations=DURATION_CHOICES,
        modes=MODE_CHOICES,
    )


def recent_deliveries(storage: Storage) -> list[Message]:
    """The latest webhook deliveries, their receivers' URLs without credentials or query (a token may be there)."""
    return [
        dataclasses.replace(message, destination=redact_url(message.destination or ""))
        for message in storage.outbox.recent("webhook", WEBHOOKS_SHOWN)
    ]


@blueprint.post("/login")
def login() -> ResponseReturnValue:
    """Check the password in constant time and open an admin session; failures are limited (fallback.team.tokens)."""
    rt = runtime()
    form = LoginForm(request.form, meta=csrf_meta())
    if not form.validate():  # an expired or missing CSRF token: no password was tried
        fresh = LoginForm(meta=csrf_meta())
        fresh.password.errors = form.password.errors or ["Your session expired: please log in again."]
        return make_response(render_template("admin/login.html", form=fresh), 401)
    try:
        password = form.password.data or ""
        checked = check_secret(rt, password, {"admin": rt.settings.admin_password}, "admin password", "login")
    except StorageError as error:
        log.error("log-in refused, the database is unavailable: %s", error)
        return text_response("The database is unavailable; try again shortly.\n", 503)
    if not isinstance(checked, Refusal):
        open_admin_session(rt)
        return redirect(url_for("admin.dashboard"), 303)
    fresh = LoginForm(meta=csrf_meta())
    if checked.status == 429:
        fresh.password.errors = [f"Too many attempts ({checked.detail}): try again then."]
    else:
        fresh.password.errors = ["Wrong password."]
    response = make_response(render_template("admin/login.html", form=fresh), checked.status)
    response.headers.update(checked.headers)
    return response


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    """End every admin session: a copy of this one's cookie, elsewhere, must not outlive the log-out."""
    form = LogoutForm(request.form, meta=csrf_meta())
    # Only an admin may end everyone's sessions: the log-in page's CSRF token is anyone's.
    if form.validate() and is_admin():
        end_every_session(runtime())
    return redirect(url_for("admin.dashboard"), 303)


@blueprint.get("/export.csv")
def export_csv() -> Response:
    """The leads as CSV, for a logged-in admin or a caller with the export bearer token."""
    rt = runtime()
    if not (rt.settings.admin_password and is_admin()):
        if not rt.settings.admin_password and not rt.settings.export_token:
            abort(404)
        checked = check_secret(rt, bearer_token(), {"export": rt.settings.export_token}, "token")
        if isinstance(checked, Refusal):
            if checked.status == 429:
                return text_response(f"{checked.detail}\n", 429, checked.headers)
            return text_response(
                "export needs an admin session or Authorization: Bearer <FALLBACK_EXPORT_TOKEN>\n",
                401,
                {"WWW-Authenticate": 'Bearer realm="fallback export"'},
            )
    try:
        since = parse_bound(request.args.get("since"), "since")
        until = parse_bound(request.args.get("until"), "until")
    except ValueError as error:  # it quotes the request: plain text, never markup
        return text_response(f"{error}\n", 400)
    try:
        chunks = csv_chunks(rt.storage.leads.iter(since, until))
        first = next(chunks)
    except StorageError as error:
        log.error("export failed: %s", error)
        return text_response("the database could not be read; try again shortly\n", 503)
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")

    def stream() -> Iterator[bytes]:
        yield first
        yield from chunks

    response = Response(stream(), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="leads-{stamp}.csv"'
    return response
