"""`/_fallback/unsubscribe`: a page, and RFC 8058 one-click, for the token of fallback.outbound.unsubscribe_token."""

from __future__ import annotations

from flask import Blueprint, Response, make_response, render_template, request

from fallback.outbound.unsubscribe_token import UNSUBSCRIBE_PATH, UnsubscribeToken
from fallback.web.runtime import runtime

blueprint = Blueprint("unsubscribe", __name__)


def _page(state: str, status: int, token: str = "") -> Response:
    response = make_response(render_template("unsubscribe.html", state=state, token=token), status)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.route(UNSUBSCRIBE_PATH, methods=["GET", "POST"])
def unsubscribe() -> Response:
    """GET asks to confirm; POST (a click on the page, or a mail client's one-click) ends follow-up: 200."""
    rt = runtime()
    token = request.args.get("t", "")
    lead_id = UnsubscribeToken(rt.secret_key).lead(token, rt.storage)
    if lead_id is None:
        return _page("bad", 400)
    if request.method == "GET":
        # Only a POST ends it: link scanners and previews fetch every link of a message.
        return _page("confirm", 200, token)
    rt.storage.followups.unsubscribe(lead_id)
    return _page("done", 200)
