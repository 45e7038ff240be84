"""What the `fallback` commands share: the one-line failure, durations, plural forms, the database they use."""

from __future__ import annotations

import atexit
import functools
import gettext
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from fallback.core.durations import parse_duration
from fallback.core.paths import PACKAGE_DIR
from fallback.core.settings import Settings
from fallback.storage import Storage, open_storage
from fallback.storage.postgres import safe_url

CommandFunction = TypeVar("CommandFunction", bound=Callable[..., Any])


class Failure(click.ClickException):
    """A one-line error, no traceback; exit status 2 like click's usage errors."""

    exit_code = 2


class Duration(click.ParamType):
    """A command-line duration, read by the same parser as the duration settings."""

    name = "duration"

    def convert(self, value: str | timedelta, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        """The duration as a timedelta, or click's usage error naming the option."""
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


@functools.cache
def _catalog() -> gettext.NullTranslations:
    # The catalogs the web pages use, in the language the shell asks for (LANGUAGE, LC_ALL, LANG).
    return gettext.translation("messages", PACKAGE_DIR / "translations", fallback=True)


def ngettext(singular: str, plural: str, number: int, **values: object) -> str:
    """`singular` or `plural`, translated, with `%(num)d` and the other `values` filled in: the CLI's plural forms."""
    return _catalog().ngettext(singular, plural, number) % {"num": number, **values}


def database_label(settings: Settings) -> str:
    """The database a command uses, as it may be shown: the SQLite path, or the URL without its password."""
    return safe_url(settings.database) if settings.is_postgres else settings.database


def load_storage(settings: Settings, create: bool = False) -> Storage:
    """The database named by the settings, migrated; closed when the command ends.

    Only `serve` (and `migrate`, for its target) may create one: any other command run from the wrong folder,
    or on a PaaS one-off container with its own empty disk, would otherwise act on a new, empty database.
    """
    if not create and not settings.is_postgres and not Path(settings.database).exists():
        raise Failure(
            f"no database at {settings.database}: run this where `fallback serve` runs, or set "
            "FALLBACK_DATABASE to its database (only `fallback serve` creates one)"
        )
    storage = open_storage(settings.database)
    atexit.register(storage.close)
    return storage


def through_api(command: CommandFunction) -> CommandFunction:
    """The `--url` option (or FALLBACK_URL) of a command that can act on a running instance through its API."""
    return click.option(
        "--url",
        envvar="FALLBACK_URL",
        metavar="URL",
        help="Act on the instance running at URL through its control API (with FALLBACK_API_TOKEN), "
        "not on a local database.",
    )(command)
