"""The page's own files, served by fallback itself: its stylesheet and script (templates, so that they can be
rebranded), the operator's logo, and robots.txt."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, render_template, send_file

from fallback.core.settings import LOGO_TYPES
from fallback.visitor.brand import palette
from fallback.visitor.hotpath import PREFIX
from fallback.web.runtime import runtime

blueprint = Blueprint("assets", __name__)


@blueprint.get(PREFIX + "/page.css")
def stylesheet() -> Response:
    """The page's stylesheet, from a template so that it can be rebranded."""
    rt = runtime()
    if rt.stylesheet is None:
        rt.stylesheet = render_template("page.css", colors=palette(rt.settings.brand_color)).encode()
    response = Response(rt.stylesheet, mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@blueprint.get(PREFIX + "/live.js")
def live_script() -> Response:
    """The page's one script: it looks again by itself (templates/live.js); a file of its own, for a strict CSP."""
    rt = runtime()
    if rt.live_script is None:
        rt.live_script = render_template("live.js").encode()
    response = Response(rt.live_script, mimetype="text/javascript")
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
