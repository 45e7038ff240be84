"""Declaring a setting: its environment variable (default, parser, help), how it is read, and its error.

fallback.core.settings declares every setting as a field with `setting()`, `optional()`, `secret()` or
`unparsed()`. Each returns what its parser returns (or None too, without a default), so mypy checks every
field's type against its parser. A variable's name is its field's, upper-cased, with the FALLBACK_ prefix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from fallback.core import parsers as p

PREFIX = "FALLBACK_"
# The platforms' own variables (Heroku, Scalingo, Dokku, Clever Cloud set them), read without the prefix.
UNPREFIXED = ("PORT", "WEB_CONCURRENCY")

Value = TypeVar("Value")


class ConfigError(ValueError):
    """A setting that cannot be used; its message names the variable and what it expected."""

    def __init__(self, variable: str, expected: str, value: str | None = None, secret: bool = False):
        # A URL's credentials are never shown, whatever the variable (SPEC 5, Privacy).
        hidden = value is None or secret or _has_credentials(value)
        shown = "" if hidden else f", got {value!r}"
        super().__init__(f"{variable}: expected {expected}{shown}")
        self.variable = variable
        self.parts = [self]

    @classmethod
    def all_of(cls, errors: list[ConfigError]) -> ConfigError:
        """One error naming every setting in `errors` (one per variable): a user fixes them all in one go."""
        if len(errors) == 1:
            return errors[0]
        combined = cls.__new__(cls)
        lines = "\n".join(f"  {error}" for error in errors)
        ValueError.__init__(combined, f"{len(errors)} settings are missing or wrong:\n{lines}")
        combined.variable = errors[0].variable
        combined.parts = [part for error in errors for part in error.parts]
        return combined


def _has_credentials(value: str) -> bool:
    try:
        return urlsplit(value.strip()).password is not None
    except ValueError:
        return "@" in value


def variable_name(field: str) -> str:
    """The environment variable of the Settings field `field`: `check_urls` is read from FALLBACK_CHECK_URLS."""
    name = field.upper()
    return name if name in UNPREFIXED else PREFIX + name


@dataclasses.dataclass(frozen=True)
class Variable(Generic[Value]):
    """One environment variable: its default as a user would write it, its parser, its help and its name."""

    default: str | None
    parse: Callable[[str], Value]
    help: str
    # The docs' wording of the default, when it is not simply the default's text.
    shown_default: str | None = None
    # Never echo the value in an error: it may hold a password.
    secret: bool = False
    # Empty as declared; Settings names each variable after its field (`named`).
    name: str = ""

    def named(self, field: str) -> Variable[Value]:
        """This variable, named after the Settings field that declares it."""
        return dataclasses.replace(self, name=variable_name(field))

    def read(self, environ: Mapping[str, str]) -> Value | None:
        """The parsed value from `environ` (blank counts as unset), the parsed default, or None."""
        value = environ.get(self.name)
        if value is None or not value.strip():
            value = self.default
        if value is None:
            return None
        try:
            return self.parse(value)
        except ValueError as error:
            raise ConfigError(self.name, str(error), value, self.secret) from None

    def shown_in_docs(self) -> str:
        """The default as the docs' settings table shows it."""
        return self.shown_default or (f"`{self.default}`" if self.default else "none")


def setting(
    default: str, parse: Callable[[str], Value], help: str, *, shown_default: str | None = None, secret: bool = False
) -> Value:
    """A Settings field, typed as what `parse` returns; its Python default is the parsed default."""
    return _field(Variable(default, parse, help, shown_default, secret), parse(default))


def optional(
    parse: Callable[[str], Value], help: str, *, shown_default: str | None = None, secret: bool = False
) -> Value | None:
    """A Settings field without a default: what `parse` returns, or None while unset."""
    return _field(Variable(None, parse, help, shown_default, secret), None)


def secret(help: str, parse: Callable[[str], str] = p.text, *, shown_default: str | None = None) -> str | None:
    """A Settings field whose value is never shown (tokens, passwords, keys), unset by default."""
    return optional(parse, help, shown_default=shown_default, secret=True)


def unparsed(default: str, parse: Callable[[str], str], help: str, *, shown_default: str) -> str:
    """A Settings field whose Python default is its text: parsing it looks at the file system, not at import time."""
    return _field(Variable(default, parse, help, shown_default), default)


def _field(variable: Variable[Any], initial: Value) -> Value:
    """The dataclass field declaring `variable`, typed as the value it holds (`initial` until read).

    `dataclasses.field` returns the field's declaration, which the dataclass replaces by that value.
    """
    declared: Value = dataclasses.field(default=initial, metadata={"variable": variable})
    return declared
