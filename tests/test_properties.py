"""Property-based tests: any input to the form is a 303 or a 400, and any text survives the CSV export."""

from __future__ import annotations

import csv
import io

from helpers import contact_fields
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fallback.team.export import COLUMNS, FORMULA_STARTS, csv_chunks, neutralise

# Text as a database can hold it: anything but lone surrogates, which UTF-8 cannot carry.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@given(TEXT)
def test_any_text_round_trips_through_the_export_but_for_the_neutralising_prefix(text):
    rows = list(csv.reader(io.StringIO(b"".join(csv_chunks([{"name": text}])).decode("utf-8"), newline="")))
    name = rows[1][[header for header, _ in COLUMNS].index("name")]
    if text.startswith(FORMULA_STARTS):
        assert name == "'" + text
    else:
        assert name == text


@given(TEXT)
def test_a_neutralised_cell_never_starts_a_formula(text):
    assert not neutralise(text).startswith(FORMULA_STARTS)


FORM_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FORM_SETTINGS
@given(email=TEXT, name=TEXT, message=st.text(max_size=3000), consent=st.sampled_from([None, "y", "on", "", "no"]))
def test_any_form_input_is_stored_or_refused_never_a_server_error(client, down, storage, email, name, message, consent):
    before = storage.leads.count()
    response = client.post(
        "/_fallback/contact", data=contact_fields(client, email=email, name=name, message=message, consent=consent)
    )
    assert response.status_code in (303, 400), response.status_code
    after = storage.leads.count()
    if response.status_code == 400:
        assert after == before
    else:
        assert after["leads"] + after["spam"] >= before["leads"] + before["spam"]


@FORM_SETTINGS
@given(name=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=200))
def test_a_stored_name_is_what_the_visitor_typed(client, down, storage, name):
    email = f"n{abs(hash(name))}@example.org"
    response = client.post("/_fallback/contact", data=contact_fields(client, email=email, name=name))
    assert response.status_code == 303
    [lead] = [lead for lead in storage.leads.iter() if lead["email"] == email]
    assert lead["name"] == name.strip()
