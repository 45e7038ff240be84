"""One lead, one document: the API, the `lead.created` webhook, the CSV export and the OpenAPI schema agree."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest
from helpers import lead_created_events
from openapi_check import problems

from fallback.storage import NewLead
from fallback.storage.serialize import CREATED_DOCUMENT
from fallback.team.export import COLUMNS, lead_cells
from fallback.team.openapi import document

BACKENDS = ["sqlite", "postgres"]
TOKEN = "lead-document-api-token-for-the-tests"
EXPORT_TOKEN = "lead-document-export-token-for-tests"
HOOKS = {
    "FALLBACK_WEBHOOK_URLS": "http://127.0.0.1:9/hooks",  # nothing listens: queued deliveries are only read back
    "FALLBACK_WEBHOOK_SECRET": "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3OA==",
}
DOCUMENT = document()
LEAD_SCHEMA = DOCUMENT["components"]["schemas"]["Lead"]


@pytest.fixture
def env(env):
    return {**env, "FALLBACK_API_TOKEN": TOKEN, "FALLBACK_EXPORT_TOKEN": EXPORT_TOKEN}


def sent(flags: bool) -> NewLead:
    """A first submission, with every box ticked (`flags`) or none."""
    return NewLead(
        "paul@example.org",
        name="Paul",
        message="Call me back",
        consent=flags,
        consent_version="en-1" if flags else None,
        notify=flags,
        notify_text="Mail me when the site is back" if flags else None,
    )


def api_leads(client) -> list[dict]:
    answer = client.get("/_fallback/api/v1/leads", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    return answer.get_json()["leads"]


def exported_rows(client) -> list[list[str]]:
    answer = client.get("/_fallback/admin/export.csv", headers={"Authorization": f"Bearer {EXPORT_TOKEN}"})
    assert answer.status_code == 200
    header, *rows = csv.reader(io.StringIO(answer.get_data(as_text=True)))
    assert header == [name for name, _ in COLUMNS]
    return rows


@pytest.mark.parametrize("flags", [True, False])
def test_a_lead_has_the_same_fields_with_the_same_types_in_the_api_the_webhook_and_the_export(client, storage, flags):
    storage.leads.save(sent(flags))
    [lead] = api_leads(client)
    [created] = lead_created_events(storage, HOOKS)
    assert lead["consent"] is flags and lead["notify"] is flags  # the API once gave 0 or 1
    for name in CREATED_DOCUMENT:
        if name == "created_at":  # a webhook writes its times in RFC 3339, with Z
            assert datetime.fromisoformat(created[name]) == datetime.fromisoformat(lead[name])
        else:
            assert (name, created[name], type(created[name])) == (name, lead[name], type(lead[name]))
    assert created["message"] == lead["messages"][0]["message"] == "Call me back"
    # The export writes the stored lead exactly as it writes the API's document of it.
    [row] = exported_rows(client)
    assert row == lead_cells(lead)
    cells = dict(zip([name for name, _ in COLUMNS], row, strict=True))
    assert (cells["consent"], cells["notify"]) == (("yes", "yes") if flags else ("no", "no"))


@pytest.mark.parametrize("flags", [True, False])
def test_the_openapi_lead_schema_is_what_storage_gives_for_a_lead(storage, flags):
    storage.leads.save(sent(flags))
    [lead] = storage.leads.iter()
    assert set(LEAD_SCHEMA["properties"]) == set(lead) and set(LEAD_SCHEMA["required"]) == set(lead)
    assert problems(lead, LEAD_SCHEMA, DOCUMENT) == []
    assert problems({**lead, "consent": int(flags)}, LEAD_SCHEMA, DOCUMENT)  # an integer, as the API once gave
