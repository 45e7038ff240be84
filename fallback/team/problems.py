"""The control API's errors as RFC 9457 problems (`application/problem+json`), and the JSON bodies it reads:
a body too large, not JSON or not an object is a problem the client can fix, never a 500."""

from __future__ import annotations

from typing import Any

from flask import Response, json, request

PROBLEM_TYPE = "urn:fallback:problem:"


class Problem(Exception):
    """An error the client can fix, answered as an RFC 9457 problem."""

    def __init__(self, status: int, slug: str, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.headers = headers or {}


def problem_response(problem: Problem) -> Response:
    """The problem as `application/problem+json`: type, title, status, detail."""
    body = {"type": PROBLEM_TYPE + problem.slug, "title": problem.title, "status": problem.status}
    body["detail"] = problem.detail
    response = Response(json.dumps(body), problem.status, mimetype="application/problem+json")
    response.headers.update(problem.headers)
    return response


def bounded_body(limit: int) -> bytes:
    """The request's body, refused with a 413 when larger than `limit` bytes, before more than that is read."""
    too_large = Problem(413, "too-large", "Body too large", f"the body must be at most {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    data = request.stream.read(limit + 1)  # a chunked body has no length to check first
    if len(data) > limit:
        raise too_large
    return data


def json_object(limit: int | None = None) -> dict[str, Any]:
    """The request's JSON body, which must be an object (of at most `limit` bytes); a problem otherwise."""
    # Whatever the Content-Type: curl -d sends no JSON one.
    data = request.get_data() if limit is None else bounded_body(limit)
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # a body nested deeper than the parser goes is bad JSON, not a 500
        body = None
    if body is None:
        raise Problem(400, "bad-json", "Bad JSON", "the body must be a JSON object (Content-Type: application/json)")
    if not isinstance(body, dict):
        raise Problem(400, "bad-json", "Bad JSON", "the body must be a JSON object, not " + type(body).__name__)
    return body
