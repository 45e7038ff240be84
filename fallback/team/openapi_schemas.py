"""The schemas of the control API's OpenAPI document (fallback.team.openapi): what each answer and request holds.

Written by hand, next to nothing else: tests/test_api.py checks every real answer against these schemas.
"""

from __future__ import annotations

from typing import Any

from fallback.storage.serialize import LEAD_SCHEMA, MESSAGE_SCHEMA, SPAM_SCHEMA

TEXT = {"type": "string"}
TEXT_OR_NULL = {"type": ["string", "null"]}
TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
MODE = {"type": "string", "enum": ["auto", "up", "down"]}
STATE = {"type": "string", "enum": ["unknown", "up", "down"]}


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
