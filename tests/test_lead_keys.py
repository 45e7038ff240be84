"""Look-alike addresses (SPEC 5, Leads): the key is the address with its domain IDNA-encoded and only ASCII letters
lower-cased, so `strasse.de` and `straße.de` are two leads; a merge never replaces the stored address; and the
schema step that re-keys an existing database keeps every lead, merging only rows the new key says are one."""

from __future__ import annotations

import pytest
from old_schema import database_at

from fallback.storage import NewLead, email_key, open_storage
from fallback.storage.records import LeadCounts

BACKENDS = ["sqlite", "postgres"]


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("Paul@Example.ORG", "paul@example.org"),
        ("  alice@strasse.de ", "alice@strasse.de"),
        ("alice@straße.de", "alice@xn--strae-oqa.de"),
        ("alice@STRAßE.de", "alice@xn--strae-oqa.de"),
        ("Ärger.Straße@example.org", "Ärger.straße@example.org"),  # the local part: only ASCII lower-cased
        ("ΣΊΣΥΦΟΣ@example.org", "ΣΊΣΥΦΟΣ@example.org"),
        ("odd@exa mple.com", "odd@exa mple.com"),  # no IDNA form: as sent, ASCII lower-cased
    ],
)
def test_the_key_encodes_the_domain_and_folds_only_ascii_letters(address, key):
    assert email_key(address) == key


def test_look_alike_domains_are_two_leads_and_neither_address_is_replaced(storage):
    victim = storage.leads.save(NewLead("alice@strasse.de", name="Alice Victim"))
    stranger = storage.leads.save(NewLead("alice@straße.de", name="Someone else"))
    assert victim != stranger
    exported = {lead["email"]: lead["name"] for lead in storage.leads.iter()}
    assert exported == {"alice@strasse.de": "Alice Victim", "alice@straße.de": "Someone else"}


def test_a_later_spelling_of_the_same_address_merges_but_never_replaces_the_stored_one(storage):
    first = storage.leads.save(NewLead("Alice@Example.org", name="Alice"))
    assert storage.leads.save(NewLead("alice@EXAMPLE.org", message="again")) == first
    [lead] = storage.leads.iter()
    assert lead["email"] == "Alice@Example.org" and lead["submissions"] == 2


def test_forget_is_case_insensitive_for_ascii_and_leaves_the_look_alike(storage):
    storage.leads.save(NewLead("alice@strasse.de"))
    storage.leads.save(NewLead("alice@straße.de"))
    assert storage.leads.forget("ALICE@STRASSE.DE") == 1
    assert [lead["email"] for lead in storage.leads.iter()] == ["alice@straße.de"]


def old_rows(backend: str, database: str, rows: list[tuple]) -> None:
    """A version-8 database holding `rows` as the casefold key stored them (schema 9 is the re-keying)."""
    statements = []
    for lead_id, (email, key, spam, submissions) in enumerate(rows, start=1):
        statements.append(
            "INSERT INTO leads (id, email, email_key, name, created_at, updated_at, submissions, spam, notify) "
            f"VALUES ({lead_id}, '{email}', '{key}', '{email}', '2026-11-0{len(email) % 9 + 1}T10:00:00', "
            f"'2026-11-20T10:00:00', {submissions}, {spam}, 0)"
        )
        statements += [
            f"INSERT INTO submissions (lead_id, at, name, message) VALUES ({lead_id}, '2026-11-1{n}T10:00:00', '', "
            f"'{email} #{n}')"
            for n in range(submissions)
        ]
    database_at(backend, database, 8, statements)


def test_the_schema_step_re_keys_every_lead_and_merges_only_one_address_written_two_ways(backend, database):
    old_rows(
        backend,
        database,
        [
            ("alice@straße.de", "alice@strasse.de", 0, 2),  # merged by the old key: stays one lead
            ("Bob@Example.org", "bob@example.org", 0, 1),
            ("carol@xn--strae-oqa.de", "carol@xn--strae-oqa.de", 0, 1),
            ("carol@straße.de", "carol@strasse.de", 0, 2),  # the same address as the row above, by the new key
            ("carol@straße.de", "carol@strasse.de", 1, 1),  # spam: re-keyed, never merged
        ],
    )
    storage = open_storage(database)  # migrates: the re-keying, then the rest
    leads = {lead["email"]: lead for lead in storage.leads.iter()}
    assert set(leads) == {"alice@straße.de", "Bob@Example.org", "carol@xn--strae-oqa.de"}
    assert leads["carol@xn--strae-oqa.de"]["submissions"] == 3
    assert len(leads["carol@xn--strae-oqa.de"]["messages"]) == 3 and len(leads["alice@straße.de"]["messages"]) == 2
    keys = sorted(row[0] for row in storage.db.read("SELECT email_key FROM leads"))
    assert keys == sorted(
        ["alice@xn--strae-oqa.de", "bob@example.org", "carol@xn--strae-oqa.de", "carol@xn--strae-oqa.de"]
    )
    assert storage.leads.count() == LeadCounts(leads=3, spam=1)
    # The unique key is back: a new submission of carol's address merges into her one lead.
    assert storage.leads.save(NewLead("CAROL@straße.de")) == leads["carol@xn--strae-oqa.de"]["id"]
