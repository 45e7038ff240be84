"""The `fallback` command: serve, check, status, mode, export, forget, purge."""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
from datetime import timedelta

import click

from . import __version__
from .config import ConfigError, Settings
from .export import csv_chunks, parse_bound
from .state import parse_duration, utcnow
from .storage import Storage, StorageError, open_storage


class Failure(click.ClickException):
    """A one-line error, no traceback; exit status 2 like click's usage errors."""

    exit_code = 2


def load_settings() -> Settings:
    """The settings from the environment, or a one-line error naming the variable."""
    try:
        return Settings.from_env()
    except ConfigError as error:
        raise Failure(str(error)) from None


def load_storage(settings: Settings) -> Storage:
    """The database named by the settings, migrated, or a one-line error; closed when the command ends."""
    try:
        storage = open_storage(settings.database)
    except StorageError as error:
        raise Failure(str(error)) from None
    atexit.register(storage.close)
    return storage


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fallback")
def cli() -> None:
    """fallback: a standby contact page for when your main site is down.

    Settings come from FALLBACK_* environment variables; see the README.
    """


@cli.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on [default: $PORT or 8000].")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Web worker processes.")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True, help="Threads per worker.")
@click.option("--checker/--no-checker", default=True, show_default=True,
              help="Run the health checker too (one per database, whatever the number of processes).")
def serve(host: str, port: int | None, workers: int, threads: int, checker: bool) -> None:
    """Run the web app and the health checker under gunicorn.

    Example:

        FALLBACK_MAIN_URL=https://www.example.com fallback serve --port 8000
    """
    from .server import serve as run_server

    settings = load_settings()
    try:
        settings.require_main_url()
    except ConfigError as error:
        raise Failure(str(error)) from None
    storage = load_storage(settings)
    storage.close()
    run_server(settings, host, port or settings.port, workers, threads, checker)


@cli.command()
@click.argument("url", required=False)
def check(url: str | None) -> None:
    """Probe the main site once now; exit 0 if up, 1 if down.

    Example:

        fallback check https://www.example.com/health
    """
    settings = load_settings()
    urls = [url] if url else list(settings.check_urls)
    if not urls:
        raise Failure("give a URL, or set FALLBACK_MAIN_URL or FALLBACK_CHECK_URLS")
    from .probe import probe  # requests, imported only by the commands that need it

    all_ok = True
    for target in urls:
        result = probe(target, settings.check_timeout, settings.max_latency, settings.expect_text)
        verdict = "up" if result.ok else "down"
        status = f"HTTP {result.status}, " if result.status else ""
        click.echo(f"{verdict}: {result.url} ({status}{result.latency * 1000:.0f} ms) {result.reason}")
        all_ok = all_ok and result.ok
    sys.exit(0 if all_ok else 1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def status(as_json: bool) -> None:
    """Show the state, the mode, since when, and how many leads are stored.

    Example:

        fallback status --json
    """
    from .status import status_document

    settings = load_settings()
    storage = load_storage(settings)
    document = status_document(storage, settings, utcnow())
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    served = "shown the page" if document["served"] == "down" else "redirected"
    click.echo(f"state:  {document['state']} (visitors are {served})")
    mode = document["mode"] + (f" until {document['mode_until']}" if document["mode_until"] else "")
    click.echo(f"mode:   {mode}")
    click.echo(f"since:  {document['since'] or 'never changed'}")
    if document["reason"]:
        click.echo(f"reason: {document['reason']}")
    checker = document["checker"]
    beat = f"last round {checker['heartbeat_age']:g}s ago" if checker["heartbeat_age"] is not None else "no round yet"
    holder = f", held by {checker['owner']}" if checker["owner"] else ""
    click.echo(f"checker: {'ok' if checker['healthy'] else 'NOT RUNNING'} ({beat}{holder})")
    if document["network_doubt"]:
        click.echo(f"warning: {checker['note']}")
    if document["incident"]:
        incident = document["incident"]
        click.echo(f"incident: since {incident['started_at'][:19]}Z, {incident['reason']}, "
                   f"{incident['leads']} leads so far")
    click.echo(f"leads:  {document['leads']} (and {document['spam']} suspected spam)")


@cli.command()
@click.argument("mode", type=click.Choice(["auto", "up", "down"]))
@click.option("--for", "duration", metavar="DURATION", help="Return to auto after this long: 30m, 2h, 1d.")
@click.option("--reason", metavar="TEXT", help="Why, for the history and the team.")
def mode(mode: str, duration: str | None, reason: str | None) -> None:
    """Force the page on (down), off (up), or let the checker decide (auto).

    Example:

        fallback mode down --for 2h --reason "TV slot at 20:00"
    """
    until = None
    if duration:
        if mode == "auto":
            raise Failure("--for only applies to up or down")
        try:
            until = utcnow() + parse_duration(duration)
        except ValueError as error:
            raise Failure(f"--for: {error}") from None
    storage = load_storage(load_settings())
    try:
        flag = storage.set_mode(mode, until=until, reason=reason, by=f"cli ({os.environ.get('USER', 'unknown')})")
    except StorageError as error:
        raise Failure(str(error)) from None
    suffix = f" until {flag.mode_until.isoformat(timespec='seconds')}" if flag.mode_until else ""
    click.echo(f"mode set to {flag.mode}{suffix}")


@cli.command()
@click.option("--since", metavar="T",
              help="Only leads last sent at or after T (ISO date or date-time, UTC unless an offset is given).")
@click.option("--until", metavar="T", help="Only leads last sent before T.")
@click.option("-o", "--output", type=click.File("wb"), default="-",
              help="Write to this file [default: standard output].")
def export(since: str | None, until: str | None, output) -> None:
    """Export the leads as CSV (suspected spam left out).

    Example:

        fallback export --since 2026-11-28 -o leads.csv
    """
    try:
        lower = parse_bound(since, "--since")
        upper = parse_bound(until, "--until")
    except ValueError as error:
        raise Failure(str(error)) from None
    storage = load_storage(load_settings())
    try:
        for chunk in csv_chunks(storage.iter_leads(lower, upper)):
            output.write(chunk)
    except StorageError as error:
        raise Failure(str(error)) from None


@cli.command()
@click.argument("email")
def forget(email: str) -> None:
    """Erase every lead of one e-mail address (case-insensitive).

    Example:

        fallback forget Paul@Example.org
    """
    storage = load_storage(load_settings())
    try:
        erased = storage.forget(email)
    except StorageError as error:
        raise Failure(str(error)) from None
    click.echo(f"erased {erased} lead{'s' if erased != 1 else ''} of {email}")


@cli.command()
@click.option("--older-than", "days", type=click.IntRange(min=0), required=True, metavar="DAYS",
              help="Erase leads last sent more than this many days ago.")
def purge(days: int) -> None:
    """Erase leads older than a number of days.

    Example:

        fallback purge --older-than 90
    """
    storage = load_storage(load_settings())
    try:
        erased = storage.purge(utcnow() - timedelta(days=days))
    except StorageError as error:
        raise Failure(str(error)) from None
    click.echo(f"erased {erased} lead{'s' if erased != 1 else ''} older than {days} days")


@cli.command()
@click.option("--to", "target", required=True, metavar="URL", help="The PostgreSQL database: postgresql://...")
def migrate(target: str) -> None:
    """Copy this SQLite database (FALLBACK_DATABASE) into PostgreSQL: leads (spam included), incidents,
    mode history, events, the flag and the secret key. Running it again copies nothing new.

    Example:

    \b
        FALLBACK_DATABASE=fallback.db \\
        fallback migrate --to postgresql://fallback:secret@db.example.com/fallback
    """
    from .migrate import migrate as copy_into

    settings = load_settings()
    try:
        lines = copy_into(settings.database, target)
    except (ValueError, StorageError) as error:
        raise Failure(str(error)) from None
    for line in lines:
        click.echo(line)
    click.echo("Now set FALLBACK_DATABASE to that URL on every instance.")


def main() -> None:
    """Entry point of the `fallback` console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cli()
