"""The contact form's signed token."""

import pytest
from helpers import forged

from fallback.web.form_token import TOKEN_LIFETIME_SECONDS, FormToken


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
        "forged": forged(tokens.issue()),
        "expired": tokens.issue(),
        "other key": FormToken("another", clock=lambda: now[0]).issue(),
    }[problem]
    if problem == "expired":
        now[0] += TOKEN_LIFETIME_SECONDS + 1
    with pytest.raises(ValueError):
        tokens.age(token)


def test_tokens_issued_in_the_same_millisecond_differ():
    tokens = FormToken("k", clock=lambda: 1000.0)
    first, second = tokens.issue(), tokens.issue()
    assert first != second
    assert tokens.age(first) == tokens.age(second) == 0.0
