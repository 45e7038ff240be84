"""The `fallback` command: serve, check, probe, status, mode, export, drill, forget, purge.

The group and its error mapping live here; the commands by concern in `database` (leads and the flag),
`service` (serve, check, probe) and `preflight` (drill, mail-test); what they share in `common`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from fallback import __version__
from fallback.cli import database, preflight, service, spam
from fallback.cli.common import Failure, database_label, load_storage, ngettext
from fallback.core.remote import RemoteError
from fallback.core.settings import ConfigError
from fallback.storage import StorageError

__all__ = ["Commands", "Failure", "cli", "database_label", "load_storage", "main", "ngettext"]


class Commands(click.Group):
    """The `fallback` group: a setting, a database or a value a user can fix ends any command the same way."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; map the errors a user can fix to one line and exit status 2, never a traceback."""
        try:
            return super().invoke(ctx)
        except (ConfigError, StorageError, ValueError, RemoteError) as error:
            raise Failure(str(error)) from None


ENV_FILE = ".env"


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fallback")
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="PATH",
    help=f"Read settings from this file, one NAME=value a line [default: {ENV_FILE} in the working directory,"
    " if there is one]. Variables already in the environment win.",
)
def cli(env_file: Path | None) -> None:
    """fallback: a standby contact page for when your main site is down.

    Settings come from FALLBACK_* environment variables, and first from a .env file (or --env-file); see
    docs/configuration.md.
    """
    read_env_file(env_file or Path(ENV_FILE))


def read_env_file(path: Path) -> None:
    """Put the file's variables in the environment, except those already there; a missing `.env` is no error.

    Read here, before any command runs, so the settings, the options that read a variable (--url, --token)
    and `serve`'s workers (forked from this process) all see them.
    """
    from dotenv import load_dotenv

    if path.is_file():
        load_dotenv(path, override=False)


for command in (
    service.serve,
    service.check,
    service.probe_agent,
    database.status,
    database.mode,
    database.notice,
    spam.spam,
    database.export,
    preflight.mail_test,
    preflight.drill,
    database.forget,
    database.purge,
    database.migrate,
):
    cli.add_command(command)


def main() -> None:
    """Entry point of the `fallback` console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cli()
