"""Unsubscribe: a signed token scoped to one lead, and `/_fallback/unsubscribe` (a page, and RFC 8058 one-click)."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from flask import Blueprint, Response, make_response, render_template, request
from itsdangerous import Signer

from fallback.storage import Storage
from fallback.web.runtime import runtime

UNSUBSCRIBE_PATH = "/_fallback/unsubscribe"

blueprint = Blueprint("unsubscribe", __name__)


class UnsubscribeToken:
    """`ID.SIGNATURE`: the lead's id, signed with its address, so a token outlives neither the lead nor its id."""

    def __init__(self, secret_key: str):
        self._signer = Signer(secret_key, salt="fallback.unsubscribe", digest_method=hashlib.sha256)

    def _value(self, lead_id: int, email_key: str) -> bytes:
        return f"{lead_id}:{email_key}".encode()

    def issue(self, lead_id: int, email_key: str) -> str:
        """The token ending follow-up for this lead."""
        return f"{lead_id}.{self._signer.get_signature(self._value(lead_id, email_key)).decode('ascii')}"

    def lead(self, token: str, storage: Storage) -> int | None:
        """The lead a token was issued for, if it is genuine and that lead is still there; else None."""
        lead_text, _, signature = token.partition(".")
        if not lead_text.isdigit() or not signature or len(token) > 200:
            return None
        lead_id = int(lead_text)
        email_key = storage.followups.email_key(lead_id)
        if email_key is None:
            return None
        genuine = self._signer.verify_signature(self._value(lead_id, email_key), signature.encode("ascii", "replace"))
        return lead_id if genuine else None

    def url(self, public_url: str, lead_id: int, email_key: str) -> str:
        """The unsubscribe link of a message to this lead, on FALLBACK_PUBLIC_URL."""
        return f"{public_url.rstrip('/')}{UNSUBSCRIBE_PATH}?t={quote(self.issue(lead_id, email_key))}"


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
