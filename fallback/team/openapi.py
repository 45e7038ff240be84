"""The OpenAPI 3.1 document of the control API (`GET /_fallback/api/v1/openapi.json`).

Written by hand, next to nothing else: tests/test_api.py checks every real answer against these schemas.
"""

from __future__ import annotations

from typing import Any

from fallback import __version__
from fallback.storage.serialize import LEAD_SCHEMA, MESSAGE_SCHEMA, SPAM_SCHEMA

TEXT = {"type": "string"}
TEXT_OR_NULL = {"type": ["string", "null"]}
TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
MODE = {"type": "string", "enum": ["auto", "up", "down"]}
STATE = {"type": "string", "enum": ["unknown", "up", "down"]}
PROBLEM_MEDIA = "application/problem+json"


def ref(name: str) -> dict[str, str]:
    """A reference to one of the document's schemas."""
    return {"$ref": f"#/components/schemas/{name}"}


def strict(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object schema whose listed properties are all required (but `optional`), and no others allowed."""
    required = [name for name in properties if name not in optional]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


FLAG = {
    "state": STATE,
    "served": {"type": "string", "enum": ["up", "down"], "description": "what visitors get: redirect or page"},
    "mode": MODE,
    "since": TIME_OR_NULL,
    "mode_until": TIME_OR_NULL,
    "reason": TEXT_OR_NULL,
}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        **strict({"type": TEXT, "title": TEXT, "status": {"type": "integer"}, "detail": TEXT}),
        "description": "RFC 9457 problem details",
    },
    "Status": strict(
        {
            **FLAG,
            "checked_state": {
                "enum": ["unknown", "up", "down"],
                "description": "what the checker last found of the main site, even while a forced mode is in force",
            },
            "network_doubt": {"type": ["integer", "boolean"]},
            "self_probe": {
                "type": "boolean",
                "description": "the checker's probe reached fallback itself: the main site needs an origin of its own",
            },
            "checker": strict(
                {
                    "owner": TEXT_OR_NULL,
                    "heartbeat_age": {"type": ["number", "null"]},
                    "healthy": {"type": "boolean"},
                    "note": TEXT_OR_NULL,
                }
            ),
            "incident": {"oneOf": [{"type": "null"}, ref("Incident")]},
            "notice": {**TEXT_OR_NULL, "description": "the public notice shown on the page (PUT notice)"},
            "leads": {"type": "integer"},
            "spam": {"type": "integer"},
            "followup": {
                **strict(
                    {
                        "pending": {"type": "integer"},
                        "sent": {"type": "integer"},
                        "failed": {"type": "integer"},
                        "last_error": TEXT_OR_NULL,
                    }
                ),
                "description": 'the "we\'re back" mail queue; only with FALLBACK_SMTP_URL set',
            },
            "quorum": {
                **strict(
                    {
                        "required": {"type": "integer", "description": "FALLBACK_QUORUM"},
                        "met": {"type": "boolean"},
                        "summary": TEXT,
                        "agreed": {"type": "array", "items": TEXT},
                        "fresh_seconds": {"type": "number"},
                        "unreachable": {
                            "type": "boolean",
                            "description": "fewer vantage points than the quorum ever reported: nothing can flip",
                        },
                        "vantage_points": {"type": "array", "items": ref("VantagePoint")},
                    }
                ),
                "description": "the vantage points and their quorum; only with FALLBACK_QUORUM above 1",
            },
            "admission": {
                **strict(
                    {
                        "rate": {
                            "type": "number",
                            "description": "visitors sent on per second now; 0 while paused (the page is shown)",
                        },
                        "ceiling": {"type": "number", "description": "FALLBACK_ADMIT_RATE, per second"},
                        "adapt": {"type": "boolean", "description": "FALLBACK_ADMIT_ADAPT"},
                        "waiting": {"type": "integer", "description": "places reserved ahead of the mark"},
                        "holding": {"type": "boolean", "description": "whether admission holds visitors back"},
                    }
                ),
                "description": "the admission gate; only with FALLBACK_ADMIT_RATE set",
            },
        },
        optional=("followup", "quorum", "admission"),
    ),
    "VantagePoint": strict(
        {
            "name": TEXT,
            "kind": {"type": "string", "enum": ["instance", "agent"]},
            "state": STATE,
            "ok": {"type": "boolean", "description": "whether its latest round passed, before its hysteresis"},
            "reason": TEXT_OR_NULL,
            "age": {"type": "number", "description": "seconds since its verdict reached the database"},
            "fresh": {"type": "boolean"},
        }
    ),
    "Incident": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "started_at": {"type": "string", "format": "date-time"},
            "ended_at": TIME_OR_NULL,
            "reason": TEXT_OR_NULL,
            "leads": {"type": "integer"},
            "duration_seconds": {"type": "integer"},
        },
        "required": ["id", "started_at", "ended_at", "leads", "duration_seconds"],
    },
    "ModeRequest": {
        **strict(
            {
                "mode": MODE,
                "for": {"type": "string", "examples": ["90s", "30m", "2h", "1h30m"], "description": "up or down only"},
                "reason": {"type": "string", "maxLength": 200},
            },
            optional=("for", "reason"),
        ),
    },
    "Flag": strict({**FLAG, "by": TEXT_OR_NULL, "changed_at": TIME_OR_NULL}),
    "NoticeRequest": strict({"text": {"type": "string", "maxLength": 280, "description": "empty clears the notice"}}),
    "Notice": strict({"notice": TEXT_OR_NULL}),
    "SpamList": strict({"spam": {"type": "array", "items": SPAM_SCHEMA}}),
    "KeepSpam": strict({"email": TEXT}),
    "Kept": strict({"email": TEXT, "kept": {"type": "integer"}}),
    # Read off the stored records (fallback.storage.serialize): what the API answers is what they hold.
    "Message": MESSAGE_SCHEMA,
    "Lead": LEAD_SCHEMA,
    "LeadsPage": strict({"leads": {"type": "array", "items": ref("Lead")}, "next": TEXT_OR_NULL}),
    "Erased": strict({"email": TEXT, "erased": {"type": "integer"}}),
    "VerdictReport": {
        **strict(
            {
                "name": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 100,
                    "description": "the vantage point's stable name; its latest verdict replaces its previous one",
                },
                "state": {**STATE, "description": "after its own fall/rise hysteresis; unknown while in doubt"},
                "ok": {"type": "boolean", "description": "whether its latest round passed"},
                "reason": {"type": "string", "description": "why; cut at 500 characters, URL secrets removed"},
                "at": {"type": "string", "format": "date-time", "description": "when the round ended, with offset"},
            },
            optional=("reason",),
        ),
        "description": "at most 4096 bytes; `at` at most 30 s ahead of the instance's clock",
    },
    "Verdict": strict(
        {
            "name": TEXT,
            "kind": {"type": "string", "enum": ["agent"]},
            "state": STATE,
            "ok": {"type": "boolean"},
            "reason": TEXT_OR_NULL,
            "at": {"type": "string", "format": "date-time"},
            "received_at": {"type": "string", "format": "date-time", "description": "freshness is judged by this"},
            "check_interval": {"type": "number", "description": "this instance's interval: agents follow it"},
            "fresh_for": {
                "type": "number",
                "description": "seconds a verdict counts after received_at: three intervals plus a timeout",
            },
            "quorum": {"type": "integer", "description": "FALLBACK_QUORUM"},
        }
    ),
}


def answer(description: str, schema: str, media: str = "application/json") -> dict[str, Any]:
    """One documented response."""
    return {"description": description, "content": {media: {"schema": ref(schema)}}}


PROBLEMS = {
    "400": answer(
        "bad input: JSON, fields, mode, duration, notice, limit, since, cursor, name, state or time",
        "Problem",
        PROBLEM_MEDIA,
    ),
    "401": answer("no token, or a wrong one (WWW-Authenticate: Bearer)", "Problem", PROBLEM_MEDIA),
    "403": answer("the export token, on a route other than GET leads", "Problem", PROBLEM_MEDIA),
    "429": answer("too many wrong tokens from this address (Retry-After)", "Problem", PROBLEM_MEDIA),
}


def operation(summary: str, ok: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """One operation: its summary, its 200 answer, the problems every operation may answer, and `extra`."""
    responses = {"200": ok, **PROBLEMS, **extra.pop("responses", {})}
    return {"summary": summary, "responses": responses, **extra}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the control API."""
    query = "query"
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
                "put": operation(
                    "Force the page on (down), off (up) or hand back to the checker (auto); recorded as by api",
                    answer("the new flag, seen by every worker within a second", "Flag"),
                    requestBody={"required": True, "content": {"application/json": {"schema": ref("ModeRequest")}}},
                )
            },
            "/notice": {
                "put": operation(
                    "Set the public notice shown on the page as plain text (at most 280 characters); empty clears it",
                    answer("the notice now shown, or null", "Notice"),
                    requestBody={"required": True, "content": {"application/json": {"schema": ref("NoticeRequest")}}},
                )
            },
            "/leads": {
                "get": operation(
                    "Genuine leads, oldest first, each with its messages; every lead once when paged by `next`",
                    answer("a page of leads; `next` is null at the end", "LeadsPage"),
                    description="The export token (FALLBACK_EXPORT_TOKEN) may call this one too.",
                    parameters=[
                        {"name": "since", "in": query, "schema": TEXT, "description": "latest submission at or after"},
                        {"name": "limit", "in": query, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                        {"name": "cursor", "in": query, "schema": TEXT, "description": "`next` of the last page"},
                    ],
                ),
                "delete": operation(
                    "Erase every lead of one address (case-insensitive), spam included",
                    answer("how many leads were erased", "Erased"),
                    parameters=[{"name": "email", "in": query, "required": True, "schema": TEXT}],
                    responses={"503": answer("the erasure could not finish; says why", "Problem", PROBLEM_MEDIA)},
                ),
            },
            "/spam": {
                "get": operation(
                    "Suspected spam, newest first, each with why it was held back (left out of leads and export)",
                    answer("the latest suspected spam", "SpamList"),
                    parameters=[
                        {"name": "limit", "in": query, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
                    ],
                )
            },
            "/spam/keep": {
                "post": operation(
                    "Not spam: the address's suspected spam becomes a lead (counted, exported, lead.created if new)",
                    answer("how many suspected spam submissions were kept", "Kept"),
                    requestBody={"required": True, "content": {"application/json": {"schema": ref("KeepSpam")}}},
                )
            },
            "/verdicts": {
                "post": operation(
                    "A probe agent's verdict (fallback probe --report-to); the latest per name wins",
                    answer("the stored verdict and what the agent should know", "Verdict"),
                    requestBody={"required": True, "content": {"application/json": {"schema": ref("VerdictReport")}}},
                    responses={
                        "409": answer("the name is an instance's", "Problem", PROBLEM_MEDIA),
                        "413": answer("a body over 4096 bytes", "Problem", PROBLEM_MEDIA),
                    },
                )
            },
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}},
        },
    }
