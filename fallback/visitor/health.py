"""The public status (`status.json`: state, mode, since when, retry_after) and the health check (`healthz`)."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response

from fallback.checking.status import UNREADABLE, health_problem
from fallback.core.clock import utcnow
from fallback.storage import StorageError
from fallback.visitor.hotpath import PREFIX
from fallback.web.runtime import runtime

log = logging.getLogger("fallback.web")

blueprint = Blueprint("health", __name__)


@blueprint.get(PREFIX + "/status.json")
def status() -> Response:
    """The public status: state, mode, since when, retry_after; nothing else (the full one is the admin's)."""
    rt = runtime()
    try:
        body, code = rt.status.body(), 200
    except StorageError as error:
        log.error("status unavailable: %s", error)
        body, code = json.dumps(UNREADABLE).encode(), 503
    response = Response(body, code, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get(PREFIX + "/healthz")
def healthz() -> Response:
    """200 `ok` while the database is writable and the checker beats; else 503 and one word, the details logged."""
    rt = runtime()
    problem = health_problem(rt.storage, rt.settings, utcnow())
    if problem:
        word, details = problem
        rt.health_log.warning(word, "healthz failing (%s): %s", word, details)
        response = Response(f"{word}\n", 503, mimetype="text/plain")
    else:
        response = Response("ok\n", mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response
