"""The dashboard's buttons: the mode, the notice, deleting a lead, keeping a spam, retrying a webhook, sending the
pending mail. Each is a CSRF-protected POST from a logged-in admin, answered with a redirect to the dashboard."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec

from flask import Blueprint, Response, abort, redirect, request, url_for
from flask.typing import ResponseReturnValue

from fallback.core.clock import utcnow
from fallback.core.durations import parse_duration
from fallback.outbound.policy import POLICIES
from fallback.storage import StorageError
from fallback.team.admin import csrf_meta, is_admin, never_cache, require_password_setting, text_response
from fallback.team.forms import LogoutForm, ModeForm
from fallback.team.modes import change_mode, change_notice
from fallback.web.runtime import runtime

log = logging.getLogger("fallback.admin")

Arguments = ParamSpec("Arguments")

# The same area, prefix and guards as the dashboard's blueprint (fallback.team.admin).
blueprint = Blueprint("admin_actions", __name__, url_prefix="/_fallback/admin")
blueprint.before_request(require_password_setting)
blueprint.after_request(never_cache)


def refuse_action() -> Response | None:
    """The answer refusing a dashboard button's POST (403 without a session, 400 without its CSRF token), or None."""
    if not is_admin():
        abort(403)
    if not LogoutForm(request.form, meta=csrf_meta()).validate():
        return text_response("The form expired: reload the dashboard and try again.\n", 400)
    return None


def button(rule: str) -> Callable[[Callable[Arguments, ResponseReturnValue]], Callable[Arguments, ResponseReturnValue]]:
    """A dashboard button: a POST to `rule`, refused by `refuse_action` before its view runs."""

    def register(view: Callable[Arguments, ResponseReturnValue]) -> Callable[Arguments, ResponseReturnValue]:
        @functools.wraps(view)
        def guarded(*args: Arguments.args, **kwargs: Arguments.kwargs) -> ResponseReturnValue:
            refused = refuse_action()
            return refused if refused is not None else view(*args, **kwargs)

        blueprint.post(rule)(guarded)
        return guarded

    return register


@button("/leads/<int:lead_id>/delete")
def delete_lead(lead_id: int) -> ResponseReturnValue:
    """Erase one lead, for a visitor who asked, or an obvious mistake."""
    try:
        found = runtime().storage.leads.delete(lead_id)
    except StorageError as error:  # not erased for real: say so, never a "deleted"
        log.error("lead %d not fully erased: %s", lead_id, error)
        return Response(
            f"Not fully erased: {error}.\nSend this delete again once that is done: it will finish the erasure "
            "(and answer that the lead is gone).\n",
            503,
            mimetype="text/plain",
        )
    if not found:
        abort(404)
    log.info("lead %d erased by an admin", lead_id)
    return redirect(url_for("admin.dashboard", q=request.args.get("q") or None), 303)


@button("/webhooks/<int:delivery_id>/retry")
def retry_webhook(delivery_id: int) -> ResponseReturnValue:
    """Post one webhook delivery again now (a receiver that was fixed, or that lost it)."""
    storage = runtime().storage
    if not storage.outbox.retry(delivery_id, "webhook", POLICIES["webhook"].deadline(storage.clock())):
        abort(404)
    log.info("webhook delivery %d queued again by an admin", delivery_id)
    return redirect(url_for("admin.dashboard", _anchor="webhooks"), 303)


@blueprint.post("/mode")
def set_mode() -> ResponseReturnValue:
    """Force the page on or off, or hand back to the checker."""
    if not is_admin():
        abort(403)
    form = ModeForm(request.form, meta=csrf_meta())
    if not form.validate():
        return text_response(" ".join(f"{name}: {'; '.join(errors)}" for name, errors in form.errors.items()), 400)
    rt = runtime()
    until = utcnow() + parse_duration(form.duration.data) if form.duration.data and form.mode.data != "auto" else None
    change_mode(rt.storage, form.mode.data, until=until, reason=form.reason.data or None, by="admin (web)")
    rt.flag.invalidate()
    rt.status.invalidate()
    return redirect(url_for("admin.dashboard"), 303)


@button("/spam/<int:lead_id>/keep")
def keep_spam(lead_id: int) -> ResponseReturnValue:
    """Not spam: the suspected spam becomes a lead (or joins its address's lead)."""
    if not runtime().storage.spam.keep_one(lead_id):
        abort(404)
    log.info("an admin kept suspected spam %d as a lead", lead_id)
    return redirect(url_for("admin.dashboard", _anchor="spam"), 303)


@button("/notice")
def set_notice() -> ResponseReturnValue:
    """Set or clear the public notice shown on the page."""
    rt = runtime()
    text = "" if "clear" in request.form else request.form.get("notice", "")
    try:
        change_notice(rt.storage, text, by="admin (web)")
    except ValueError as error:
        return Response(f"notice: {error}\n", 400, mimetype="text/plain")
    rt.flag.invalidate()
    return redirect(url_for("admin.dashboard", _anchor="notice-heading"), 303)


@button("/followup/send")
def send_followups_now() -> ResponseReturnValue:
    """Make every pending follow-up message due at once: the sender thread takes them within a second."""
    # Only the flag in the queue changes here: the sending stays in the checker's process, off any request.
    due = runtime().storage.outbox.send_now("followup")
    log.info("an admin asked to send the %d pending follow-up message(s) now", due)
    return redirect(url_for("admin.dashboard", _anchor="followup"), 303)
