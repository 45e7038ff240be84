"""A stored record as the world sees it: one JSON document per entity, and the JSON Schema of that document.

The API, the `lead.created` webhook, the CSV export and the OpenAPI document all read these, so that a lead has
the same fields with the same types everywhere (its consent is a boolean in each). A lead is its own document
(records.Lead); the schemas are read off the records' annotations, so a field added there is documented, and
typed, by the same change.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any

from fallback.storage.records import HeldSpam, Lead, NewLead, SentMessage, first_sent

# The `lead.created` event's data: these fields of the new lead's document, with the message it sent.
CREATED_DOCUMENT = ("id", "email", "name", "consent", "notify", "language", "landing_path", "created_at")

DESCRIPTIONS = {
    "consent": "whether the visitor ticked the consent box (the first consent given stays)",
    "notify": "asked to be mailed when the site is back",
    "messages": "every submission, oldest first",
}
_JSON_TYPES: dict[object, str] = {str: "string", int: "integer", bool: "boolean", float: "number", type(None): "null"}


def lead_created(lead_id: int, sent: NewLead, now: str) -> dict[str, object]:
    """The `lead.created` event's facts: the new lead's document (CREATED_DOCUMENT) and the message it sent, as
    stored (erased with the lead). Its time stays as stored; the webhook writes it in RFC 3339."""
    lead = first_sent(lead_id, sent, now)
    data: dict[str, object] = {name: value for name, value in lead.items() if name in CREATED_DOCUMENT}
    data["message"] = sent.message
    return data


def object_schema(record: type, names: Sequence[str] | None = None) -> dict[str, Any]:
    """The JSON Schema of a record's document (of the fields `names`, or all): each required, no other allowed."""
    hints = typing.get_type_hints(record)
    names = list(hints) if names is None else list(names)
    properties = {name: _schema(hints[name], name) for name in names}
    return {"type": "object", "properties": properties, "required": names, "additionalProperties": False}


def _schema(hint: object, name: str) -> dict[str, Any]:
    """The JSON Schema of one annotated field; times (`at`, `*_at`) as date-times."""
    if typing.get_origin(hint) is list:  # list[SentMessage]: a JSON array of their documents
        (item,) = typing.get_args(hint)
        schema: dict[str, Any] = {"type": "array", "items": object_schema(item)}
    else:
        members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        names = [_JSON_TYPES[member] for member in members]
        schema = {"type": names[0] if len(names) == 1 else names}
        if name == "at" or name.endswith("_at"):
            schema["format"] = "date-time"
    if name in DESCRIPTIONS:
        schema["description"] = DESCRIPTIONS[name]
    return schema


LEAD_SCHEMA = object_schema(Lead)
MESSAGE_SCHEMA = object_schema(SentMessage)
SPAM_SCHEMA = object_schema(HeldSpam)
