"""`fallback spam`: the suspected spam, and the "not spam" that makes one a lead (it then counts, is exported,
gets the follow-up it asked for, and a new lead fires lead.created)."""

from __future__ import annotations

import click

from fallback.cli.common import database_label, load_storage, ngettext
from fallback.core.settings import Settings


@click.group()
def spam() -> None:
    """Suspected spam: list it, or keep one as a real lead.

    Example:

        fallback spam list
    """


@spam.command("list")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="How many, newest first.")
def list_spam(limit: int) -> None:
    """List suspected spam, newest first, with why it was held back.

    Example:

        fallback spam list --limit 20
    """
    settings = Settings.from_env()
    held = load_storage(settings).spam.list(limit)
    for row in held:
        said = f": {row['message'][:60]!r}" if row["message"] else ""
        click.echo(f"{row['updated_at'][:19]}Z  {row['email']}  ({row['spam_reason']}){said}")
    click.echo(ngettext("%(num)d suspected spam", "%(num)d suspected spam", len(held)))
    click.echo(f"database: {database_label(settings)}")


@spam.command()
@click.argument("email")
def keep(email: str) -> None:
    """Keep the suspected spam of EMAIL as a real lead (not spam).

    Example:

        fallback spam keep paul@example.org
    """
    settings = Settings.from_env()
    kept = load_storage(settings).spam.keep(email)
    if kept:
        click.echo(
            ngettext(
                "kept %(num)d suspected spam of %(email)s as a lead",
                "kept %(num)d suspected spam of %(email)s as a lead",
                kept,
                email=email,
            )
        )
    else:
        click.echo(f"no suspected spam of {email}")
    click.echo(f"database: {database_label(settings)}")
