"""The OpenAPI 3.1 document of the control API (`GET /_fallback/api/v1/openapi.json`): its routes and answers.

The schemas they name are in fallback.team.openapi_schemas; tests/test_api.py checks every real answer against them.
"""

from __future__ import annotations

from typing import Any

from fallback import __version__
from fallback.team.openapi_schemas import SCHEMAS, TEXT, ref

PROBLEM_MEDIA = "application/problem+json"
QUERY = "query"
LIMIT = {"name": "limit", "in": QUERY, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}


def answer(description: str, schema: str, media: str = "application/json") -> dict[str, Any]:
    """One documented response."""
    return {"description": description, "content": {media: {"schema": ref(schema)}}}


def problem(description: str) -> dict[str, Any]:
    """One documented refusal: an RFC 9457 problem."""
    return answer(description, "Problem", PROBLEM_MEDIA)


def body(schema: str) -> dict[str, Any]:
    """A required JSON request body, of one of the document's schemas."""
    return {"required": True, "content": {"application/json": {"schema": ref(schema)}}}


PROBLEMS = {
    "400": problem("bad input: JSON, fields, mode, duration, notice, limit, since, cursor, name, state or time"),
    "401": problem("no token, or a wrong one (WWW-Authenticate: Bearer)"),
    "403": problem("the export token, on a route other than GET leads"),
    "429": problem("too many wrong tokens from this address (Retry-After)"),
}


def operation(summary: str, ok: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """One operation: its summary, its 200 answer, the problems every operation may answer, and `extra`."""
    responses = {"200": ok, **PROBLEMS, **extra.pop("responses", {})}
    return {"summary": summary, "responses": responses, **extra}


def taking(summary: str, request: str, said: str, schema: str, **extra: Any) -> dict[str, Any]:
    """An operation with a JSON body of the `request` schema, answering `said` with the `schema` document."""
    return operation(summary, answer(said, schema), requestBody=body(request), **extra)


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the control API."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fallback control API",
            "version": __version__,
            "description": "Without FALLBACK_API_TOKEN every route answers 404. Errors are RFC 9457 problems.",
        },
        "servers": [{"url": "/_fallback/api/v1"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
        "paths": {
            "/status": {"get": operation("The full status document", answer("the status", "Status"))},
            "/mode": {
                "put": taking(
                    "Force the page on (down), off (up) or hand back to the checker (auto); recorded as by api",
                    "ModeRequest",
                    "the new flag, seen by every worker within a second",
                    "Flag",
                )
            },
            "/notice": {
                "put": taking(
                    "Set the public notice shown on the page as plain text (at most 280 characters); empty clears it",
                    "NoticeRequest",
                    "the notice now shown, or null",
                    "Notice",
                )
            },
            "/leads": {
                "get": operation(
                    "Genuine leads, oldest first, each with its messages; every lead once when paged by `next`",
                    answer("a page of leads; `next` is null at the end", "LeadsPage"),
                    description="The export token (FALLBACK_EXPORT_TOKEN) may call this one too.",
                    parameters=[
                        {"name": "since", "in": QUERY, "schema": TEXT, "description": "latest submission at or after"},
                        LIMIT,
                        {"name": "cursor", "in": QUERY, "schema": TEXT, "description": "`next` of the last page"},
                    ],
                ),
                "delete": operation(
                    "Erase every lead of one address (case-insensitive), spam included",
                    answer("how many leads were erased", "Erased"),
                    parameters=[{"name": "email", "in": QUERY, "required": True, "schema": TEXT}],
                    responses={"503": problem("the erasure could not finish; says why")},
                ),
            },
            "/spam": {
                "get": operation(
                    "Suspected spam, newest first, each with why it was held back (left out of leads and export)",
                    answer("the latest suspected spam", "SpamList"),
                    parameters=[LIMIT],
                )
            },
            "/spam/keep": {
                "post": taking(
                    "Not spam: the address's suspected spam becomes a lead (counted, exported, lead.created if new)",
                    "KeepSpam",
                    "how many suspected spam submissions were kept",
                    "Kept",
                )
            },
            "/verdicts": {
                "post": taking(
                    "A probe agent's verdict (fallback probe --report-to); the latest per name wins",
                    "VerdictReport",
                    "the stored verdict and what the agent should know",
                    "Verdict",
                    responses={
                        "409": problem("the name is an instance's"),
                        "413": problem("a body over 4096 bytes"),
                    },
                )
            },
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}},
        },
    }
