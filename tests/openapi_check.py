"""A small check of JSON values against the API's OpenAPI 3.1 schemas: the keywords fallback.openapi uses.

Hand-written so that the tests need no JSON Schema library: type, enum, properties, required,
additionalProperties, items, oneOf, maxLength, minimum, maximum and local $ref.
"""

from __future__ import annotations

from typing import Any

TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def problems(value: Any, schema: dict, document: dict, where: str = "$") -> list[str]:
    """What is wrong with `value` against `schema` (resolved in `document`), one line per fault."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        return problems(value, document["components"]["schemas"][name], document, where)
    if "oneOf" in schema:
        matching = [option for option in schema["oneOf"] if not problems(value, option, document, where)]
        return [] if len(matching) == 1 else [f"{where}: matches {len(matching)} of oneOf, not exactly one"]
    faults = []
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(TYPES[name](value) for name in types):
            return [f"{where}: {value!r} is not {' or '.join(types)}"]
    if "enum" in schema and value not in schema["enum"]:
        faults.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, str) and len(value) > schema.get("maxLength", len(value)):
        faults.append(f"{where}: longer than {schema['maxLength']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        faults += [f"{where}: missing {name}" for name in schema.get("required", ()) if name not in value]
        if schema.get("additionalProperties") is False:
            faults += [f"{where}: undocumented {name}" for name in value if name not in properties]
        for name, item in value.items():
            if name in properties:
                faults += problems(item, properties[name], document, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            faults += problems(item, schema["items"], document, f"{where}[{index}]")
    return faults


def check_answer(document: dict, method: str, route: str, response) -> None:
    """Assert that `response` is documented for `method` on `route`, and that its JSON fits the schema."""
    operation = document["paths"][route][method.lower()]
    documented = operation["responses"].get(str(response.status_code))
    assert documented, f"{method} {route}: {response.status_code} is not documented"
    content = documented.get("content")
    if not content:
        return
    assert response.mimetype in content, f"{method} {route}: {response.mimetype} is not documented"
    faults = problems(response.get_json(force=True), content[response.mimetype]["schema"], document)
    assert not faults, f"{method} {route} {response.status_code}: " + "; ".join(faults)
