"""The contact form's one validation path (fallback.contact), as plain values."""

import pytest

from fallback.visitor.contact import check_contact, landing_path


def check(require_consent=True, token_age=10.0, token_problem=None, min_seconds=3.0, **fields):
    return check_contact(
        fields,
        token_age=token_age,
        token_problem=token_problem,
        require_consent=require_consent,
        min_seconds=min_seconds,
        language="fr",
        consent_text="J'accepte",
    )


def test_a_valid_submission_becomes_a_lead_in_the_visitors_language():
    lead = check(email="paul@example.org", name=" Paul ", message=" Hello\nthere ", consent="y", path="/p?x=1").lead
    assert lead is not None
    assert (lead.email, lead.name, lead.message, lead.consent) == ("paul@example.org", "Paul", "Hello\nthere", True)
    assert (lead.language, lead.consent_version, lead.consent_text) == ("fr", "fr-1", "J'accepte")
    assert (lead.landing_path, lead.spam_reason) == ("/p?x=1", None)


@pytest.mark.parametrize(
    "email",
    ["", "paul", "paul@", "@example.org", "a b@example.org", "x" * 250 + "@example.org", "paul\x00@example.org"],
)
def test_a_bad_address_is_refused(email):
    checked = check(email=email, consent="y")
    assert checked.lead is None and set(checked.errors) == {"email"}


def test_consent_is_required_unless_turned_off():
    assert set(check(email="paul@example.org").errors) == {"consent"}
    assert set(check(email="paul@example.org", consent="false").errors) == {"consent"}
    lead = check(email="paul@example.org", require_consent=False).lead
    assert lead is not None and lead.consent is False


@pytest.mark.parametrize(
    "field, value", [("name", "n" * 201), ("message", "m" * 2001), ("path", "/" + "p" * 2000), ("website", "w" * 201)]
)
def test_every_field_has_a_length_limit(field, value):
    assert set(check(email="paul@example.org", consent="y", **{field: value}).errors) == {field}


def test_line_breaks_are_refused_except_in_the_message():
    assert set(check(email="paul@example.org", consent="y", name="a\nb").errors) == {"name"}
    assert check(email="paul@example.org", consent="y", message="a\r\nb\tc").lead is not None
    assert set(check(email="paul@example.org", consent="y", message="a\x07b").errors) == {"message"}


def test_a_refused_token_stores_nothing_and_says_why():
    checked = check(email="paul@example.org", consent="y", token_age=None, token_problem="forged")
    assert checked.lead is None and checked.token_problem == "forged" and not checked.errors


@pytest.mark.parametrize(
    "fields, reason",
    [({"website": "http://spam"}, "honeypot"), ({"token_age": 0.5}, "sent 0.5s after the page was shown")],
)
def test_spam_is_recognised_and_still_stored_apart(fields, reason):
    lead = check(email="paul@example.org", consent="y", **fields).lead
    assert lead is not None and lead.spam_reason == reason


def test_the_landing_path_is_a_path_or_slash():
    assert landing_path({"path": "/pricing?x=1"}) == "/pricing?x=1"
    assert landing_path({"path": "https://evil.example/"}) == "/"
    assert landing_path({}) == "/"
