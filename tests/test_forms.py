"""The contact form's signed token and its validation rules."""

import pytest
from werkzeug.datastructures import MultiDict

from fallback.forms import TOKEN_LIFETIME_SECONDS, ContactForm, FormToken


def test_a_token_tells_its_age_in_milliseconds():
    now = [1000.0]
    tokens = FormToken("k", clock=lambda: now[0])
    token = tokens.issue()
    now[0] += 3.25
    assert tokens.age(token) == pytest.approx(3.25)


@pytest.mark.parametrize("problem", ["missing", "forged", "expired", "other key"])
def test_a_missing_forged_expired_or_foreign_token_is_refused(problem):
    now = [1000.0]
    tokens = FormToken("k", clock=lambda: now[0])
    token = {
        "missing": "",
        "forged": tokens.issue()[:-2] + "xx",
        "expired": tokens.issue(),
        "other key": FormToken("another", clock=lambda: now[0]).issue(),
    }[problem]
    if problem == "expired":
        now[0] += TOKEN_LIFETIME_SECONDS + 1
    with pytest.raises(ValueError):
        tokens.age(token)


def form(**fields):
    return ContactForm(MultiDict(fields))


def test_a_valid_submission_passes():
    assert form(email="paul@example.org", consent="y", token="t").validate()


@pytest.mark.parametrize("email", ["", "paul", "paul@", "@example.org", "a b@example.org", "x" * 250 + "@example.org"])
def test_a_bad_address_is_refused(email):
    submitted = form(email=email, consent="y")
    assert not submitted.validate()
    assert submitted.email.errors


def test_consent_is_required_unless_turned_off():
    assert not form(email="paul@example.org").validate()
    assert ContactForm(MultiDict({"email": "paul@example.org"}), require_consent=False).validate()


def test_every_field_has_a_length_limit():
    assert not form(email="paul@example.org", consent="y", name="n" * 201).validate()
    assert not form(email="paul@example.org", consent="y", message="m" * 2001).validate()
    assert not form(email="paul@example.org", consent="y", path="/" + "p" * 2000).validate()


def test_the_landing_path_is_a_path_or_slash():
    assert form(path="/pricing?x=1").landing_path() == "/pricing?x=1"
    assert form(path="https://evil.example/").landing_path() == "/"


def test_tokens_issued_in_the_same_millisecond_differ():
    tokens = FormToken("k", clock=lambda: 1000.0)
    first, second = tokens.issue(), tokens.issue()
    assert first != second
    assert tokens.age(first) == tokens.age(second) == 0.0
