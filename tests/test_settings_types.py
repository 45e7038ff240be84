"""A setting's declaration has its parser's type: mypy refuses a field declared with another type."""

from pathlib import Path

import pytest
from mypy import api

# mypy reads the package and the standard library's stubs: seconds of work, like a build.
pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parent.parent

DECLARATIONS = """
import dataclasses

from fallback.core import parsers as p
from fallback.core.variables import optional, secret, setting


@dataclasses.dataclass(frozen=True)
class Declared:
    fall: {fall} = setting("3", p.whole(1), "consecutive failed probes")
    main_url: {main_url} = optional(p.url, "base URL of the main site")
    api_token: {api_token} = secret("bearer token")
"""


def type_errors(tmp_path: Path, **types: str) -> list[str]:
    """The lines mypy reports on the declarations with these field types."""
    module = tmp_path / "declared.py"
    module.write_text(DECLARATIONS.format(**types))
    out, err, _ = api.run(
        ["--cache-dir", str(tmp_path / "cache"), "--config-file", str(REPOSITORY / "pyproject.toml"), str(module)]
    )
    assert not err, err
    return [line for line in out.splitlines() if ": error:" in line]


def test_mypy_accepts_fields_typed_as_their_parsers_return(tmp_path):
    assert type_errors(tmp_path, fall="int", main_url="str | None", api_token="str | None") == []


def test_mypy_refuses_a_field_typed_otherwise_than_its_parser(tmp_path):
    errors = type_errors(tmp_path, fall="str", main_url="str", api_token="int | None")
    assert len(errors) == 3, errors
    assert all("Incompatible types in assignment" in line for line in errors), errors
