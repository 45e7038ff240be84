"""Every submission kept: nobody overwrites a lead, the first consent stays, a double click is stored once."""

import csv
import io
from datetime import timedelta

from helpers import contact_fields, log_in

from fallback.storage import NewLead

BACKENDS = ["sqlite", "postgres"]


def alice(**fields) -> NewLead:
    values = {
        "email": "alice@example.org",
        "name": "Alice",
        "message": "Please call me about order 42.",
        "consent": True,
        "consent_version": "en-1",
        "consent_text": "I agree to be contacted.",
    }
    values.update(fields)
    return NewLead(**values)


def test_a_second_post_with_the_same_address_overwrites_neither_the_name_nor_the_message(clocked_storage):
    clocked_storage.leads.save(alice())
    clocked_storage.clock.now += timedelta(minutes=5)
    clocked_storage.leads.save(alice(email="ALICE@example.org", name="Mallory", message="Ignore that, send it to me."))
    [lead] = clocked_storage.leads.iter()
    assert lead["name"] == "Alice" and lead["submissions"] == 2
    assert [(sent["at"][:19], sent["name"], sent["message"]) for sent in lead["messages"]] == [
        ("2026-11-28T20:00:00", "Alice", "Please call me about order 42."),
        ("2026-11-28T20:05:00", "Mallory", "Ignore that, send it to me."),
    ]


def test_the_first_consent_stays_recorded_with_its_wording_version_and_time(clocked_storage):
    clocked_storage.leads.save(alice())
    clocked_storage.clock.now += timedelta(minutes=5)
    clocked_storage.leads.save(alice(consent=False, consent_version=None, consent_text=None))
    clocked_storage.clock.now += timedelta(minutes=5)
    clocked_storage.leads.save(alice(consent_version="fr-1", consent_text="J'accepte d'être contacté."))
    [lead] = clocked_storage.leads.iter()
    assert (lead["consent"], lead["consent_version"], lead["consent_text"]) == (1, "en-1", "I agree to be contacted.")
    assert lead["consent_at"].startswith("2026-11-28T20:00:00")


def test_consent_given_later_is_recorded_at_that_time(clocked_storage):
    clocked_storage.leads.save(alice(consent=False))
    clocked_storage.clock.now += timedelta(minutes=5)
    clocked_storage.leads.save(alice(consent_version="fr-1", consent_text="J'accepte."))
    [lead] = clocked_storage.leads.iter()
    assert (lead["consent"], lead["consent_version"], lead["consent_at"][:19]) == (1, "fr-1", "2026-11-28T20:05:00")


def test_the_same_form_token_and_fields_are_stored_once(clocked_storage):
    first = clocked_storage.leads.save(alice(token="form-1"))
    clocked_storage.clock.now += timedelta(seconds=1)
    assert clocked_storage.leads.save(alice(token="form-1")) == first
    clocked_storage.leads.save(alice(token="form-1", message="Also: my number is 555-0100."))  # edited, then sent again
    clocked_storage.leads.save(alice(token="form-2"))  # a new page, the same words: sent again on purpose
    [lead] = clocked_storage.leads.iter()
    assert lead["submissions"] == 3 and len(lead["messages"]) == 3


def test_a_double_click_on_the_form_is_stored_once_and_both_clicks_are_thanked(client, down, storage):
    fields = contact_fields(client, name="Paul", message="Call me")
    assert client.post("/_fallback/contact", data=fields).status_code == 303
    assert client.post("/_fallback/contact", data=fields).status_code == 303
    [lead] = storage.leads.iter()
    assert lead["submissions"] == 1 and [sent["message"] for sent in lead["messages"]] == ["Call me"]


def test_the_export_holds_every_message_oldest_first_with_its_time(client, down, storage):
    client.post("/_fallback/contact", data=contact_fields(client, name="Paul", message="First\nline two"))
    client.post("/_fallback/contact", data=contact_fields(client, name="Mallory", message="=second"))
    client.post("/_fallback/contact", data=contact_fields(client, name="Paul", message=""))
    log_in(client)
    [row] = csv.DictReader(io.StringIO(client.get("/_fallback/admin/export.csv").get_data(as_text=True)))
    assert row["name"] == "Paul" and row["submissions"] == "3"
    first, second = row["message"].split("\n---\n")
    assert first.startswith("[20") and first.endswith("Z] First\nline two")
    assert second.endswith("Z, as Mallory] =second")
    assert first[1:21] <= second[1:21]


def test_erasing_an_address_erases_every_submission_of_it(clocked_storage):
    clocked_storage.leads.save(alice())
    clocked_storage.leads.save(alice(message="again"))
    clocked_storage.leads.save(alice(spam_reason="honeypot", message="spam text"))
    clocked_storage.leads.save(NewLead("bob@example.org", message="kept"))
    assert clocked_storage.leads.forget("Alice@Example.org") == 2
    assert [row[0] for row in clocked_storage.db.read("SELECT message FROM submissions")] == ["kept"]
