"""The commands on the leads and the flag: status, mode, export, forget, purge, migrate."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import cast

import click

from fallback.cli.common import Duration, Failure, database_label, load_storage, ngettext, through_api
from fallback.core.clock import utcnow
from fallback.core.paths import owner_only
from fallback.core.remote import Remote
from fallback.core.settings import Settings
from fallback.storage.records import Lead
from fallback.team.export import csv_chunks, parse_bound
from fallback.team.modes import change_mode, change_notice


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@through_api
def status(as_json: bool, url: str | None) -> None:
    """Show the state, the mode, since when, and how many leads are stored.

    Example:

        fallback status --json
        FALLBACK_API_TOKEN=... fallback status --url https://sorry.example.com
    """
    from fallback.checking.status import status_document

    settings = Settings.from_env()
    if url:
        document = {**Remote(url, settings.api_token).status(), "instance": url}
    else:
        storage = load_storage(settings)
        document = {**status_document(storage, settings, utcnow()), "database": database_label(settings)}
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    served = "shown the page" if document["served"] == "down" else "redirected"
    click.echo(f"state:  {document['state']} (visitors are {served})")
    mode = document["mode"] + (f" until {document['mode_until']}" if document["mode_until"] else "")
    click.echo(f"mode:   {mode}")
    # A forced mode's time is not when the incident began: the incident line below keeps the latter.
    forced = " (when the mode was set)" if document["mode"] != "auto" else ""
    click.echo(f"since:  {document['since'] or 'never changed'}{forced}")
    if document["reason"]:
        click.echo(f"reason: {document['reason']}")
    checker = document["checker"]
    beat = f"last round {checker['heartbeat_age']:g}s ago" if checker["heartbeat_age"] is not None else "no round yet"
    holder = f", held by {checker['owner']}" if checker["owner"] else ""
    click.echo(f"checker: {'ok' if checker['healthy'] else 'NOT RUNNING'} ({beat}{holder})")
    if document["network_doubt"] or document["self_probe"]:
        click.echo(f"warning: {checker['note']}")
    if "quorum" in document:  # FALLBACK_QUORUM above 1 where the document was made
        echo_quorum(document["quorum"])
    if document["incident"]:
        incident = document["incident"]
        leads = ngettext("%(num)d lead so far", "%(num)d leads so far", incident["leads"])
        click.echo(f"incident: since {incident['started_at'][:19]}Z, {incident['reason']}, {leads}")
    if document.get("notice"):  # an instance of an older version has no notice in its document
        click.echo(f"notice: {document['notice']}")
    click.echo(f"leads:  {document['leads']} (and {document['spam']} suspected spam)")
    if "followup" in document:  # the instance has SMTP set: its queue, read where the document was made
        queue = document["followup"]
        last = f", last error: {queue['last_error']}" if queue["last_error"] else ""
        click.echo(f"follow-up mail: {queue['pending']} pending, {queue['sent']} sent, {queue['failed']} failed{last}")
    if "admission" in document:  # FALLBACK_ADMIT_RATE set where the document was made
        echo_admission(document["admission"])
    click.echo(f"instance: {url}" if url else f"database: {document['database']}")


def echo_admission(admission: dict) -> None:
    """The admission line of `fallback status`: the rate in force against its ceiling, and how many wait."""
    rate = f"{admission['rate']:g}/second" if admission["rate"] else "paused while the page is shown"
    adapt = ", adapting" if admission["adapt"] else ""
    click.echo(f"admission: {rate} (ceiling {admission['ceiling']:g}/second{adapt}), {admission['waiting']} waiting")


def echo_quorum(quorum: dict) -> None:
    """The quorum's lines of `fallback status`: met or missing, and each vantage point's last verdict."""
    click.echo(quorum["summary"])
    if quorum["unreachable"]:
        reported = len(quorum["vantage_points"])
        click.echo(
            f"warning: FALLBACK_QUORUM is {quorum['required']} but only {reported} vantage point"
            f"{'' if reported == 1 else 's'} ever reported: nothing can flip until more do"
        )
    for point in quorum["vantage_points"]:
        stale = "" if point["fresh"] else ", stale"
        click.echo(
            f"  {point['name']} ({point['kind']}): {point['state']}, {point['age']:g}s ago{stale}: {point['reason']}"
        )


@click.command()
@click.argument("mode", type=click.Choice(["auto", "up", "down"]))
@click.option(
    "--for", "duration", type=Duration(), metavar="DURATION", help="Return to auto after this long: 90s, 30m, 2h, 1d."
)
@click.option("--reason", metavar="TEXT", help="Why, for the history and the team.")
@through_api
def mode(mode: str, duration: timedelta | None, reason: str | None, url: str | None) -> None:
    """Force the page on (down), off (up), or let the checker decide (auto).

    Example:

        fallback mode down --for 2h --reason "TV slot at 20:00"
    """
    if duration and mode == "auto":
        raise Failure("--for only applies to up or down")
    settings = Settings.from_env()
    if url:
        flag = Remote(url, settings.api_token).set_mode(mode, duration, reason)
        until = datetime.fromisoformat(flag["mode_until"]) if flag["mode_until"] else None
        chosen, where = flag["mode"], f"instance: {url}"
    else:
        stored = change_mode(
            load_storage(settings),
            mode,
            until=utcnow() + duration if duration else None,
            reason=reason,
            by=f"cli ({os.environ.get('USER', 'unknown')})",
        )
        chosen, until, where = stored.mode, stored.mode_until, f"database: {database_label(settings)}"
    suffix = f" until {until.isoformat(timespec='seconds')}" if until else ""
    click.echo(f"mode set to {chosen}{suffix}")
    click.echo(where)


@click.command()
@click.argument("text", required=False)
@click.option("--clear", is_flag=True, help="Remove the notice.")
def notice(text: str | None, clear: bool) -> None:
    """Show a short public notice on the page ("Back at 21:30"), or print the current one.

    At most 280 characters of plain text, shown on the page while it is served; the public status
    document does not change.

    Example:

        fallback notice "Back at 21:30: leave your address and we will write to you"
    """
    if text is not None and clear:
        raise Failure("give either TEXT or --clear, not both")
    settings = Settings.from_env()
    storage = load_storage(settings)
    if text is None and not clear:
        current = storage.flag.read().notice
        click.echo(current if current else "no notice")
    else:
        # A notice too long or with a line break is a ValueError: the group prints it as one line.
        flag = change_notice(storage, None if clear else text, by=f"cli ({os.environ.get('USER', 'unknown')})")
        click.echo(f"notice set: {flag.notice}" if flag.notice else "notice cleared")
    click.echo(f"database: {database_label(settings)}")


@click.command()
@click.option(
    "--since",
    metavar="T",
    help="Only leads last sent at or after T (ISO date or date-time, UTC unless an offset is given).",
)
@click.option("--until", metavar="T", help="Only leads last sent before T.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, writable=True),
    default="-",
    help="Write to this file, readable by its owner only [default: standard output].",
)
@through_api
def export(since: str | None, until: str | None, output: str, url: str | None) -> None:
    """Export the leads as CSV (suspected spam and drill leads left out).

    Example:

        fallback export --since 2026-11-28 -o leads.csv
    """
    lower, upper = parse_bound(since, "--since"), parse_bound(until, "--until")
    settings = Settings.from_env()
    leads: Iterator[Lead]
    if url:  # the export token may read leads too; the API's leads are the stored Lead documents (serialize)
        leads = cast(Iterator[Lead], Remote(url, settings.api_token or settings.export_token).leads(lower, upper))
    else:
        leads = load_storage(settings).leads.iter(lower, upper)
    if output == "-":
        for chunk in csv_chunks(leads):
            click.echo(chunk, nl=False)
        return
    owner_only(output, create=True)  # leads are personal data: 0600 before a byte is written, whatever the umask
    with open(output, "wb") as file:
        file.writelines(csv_chunks(leads))


# What `forget` cannot reach, said every time (README, Privacy and erasure).
NOT_ERASED = (
    "not erased, being outside this database: backups and snapshots of it, CSV files exported earlier, mail and"
    " webhooks already sent, and logs kept by the platform or a proxy in front (their access logs); erase those"
    " where they are kept"
)


@click.command()
@click.argument("email")
def forget(email: str) -> None:
    """Erase every lead of one e-mail address (case-insensitive).

    Example:

        fallback forget Paul@Example.org
    """
    settings = Settings.from_env()
    erased = load_storage(settings).leads.forget(email)
    click.echo(ngettext("erased %(num)d lead of %(email)s", "erased %(num)d leads of %(email)s", erased, email=email))
    click.echo(f"database: {database_label(settings)}")
    click.echo(NOT_ERASED)


@click.command()
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=0),
    required=True,
    metavar="DAYS",
    help="Erase leads last sent more than this many days ago.",
)
def purge(days: int) -> None:
    """Erase leads older than a number of days.

    Example:

        fallback purge --older-than 90
    """
    settings = Settings.from_env()
    erased = load_storage(settings).leads.purge(utcnow() - timedelta(days=days))
    click.echo(
        ngettext(
            "erased %(num)d lead older than %(days)d days",
            "erased %(num)d leads older than %(days)d days",
            erased,
            days=days,
        )
    )
    click.echo(f"database: {database_label(settings)}")


@click.command()
@click.option("--to", "target", required=True, metavar="URL", help="The PostgreSQL database: postgresql://...")
def migrate(target: str) -> None:
    """Copy this SQLite database (FALLBACK_DATABASE) into PostgreSQL: leads (spam included), incidents,
    events (the mode history among them), the flag and the secret key. Running it again copies nothing new.

    Example:

    \b
        FALLBACK_DATABASE=fallback.db \\
        fallback migrate --to postgresql://fallback:secret@db.example.com/fallback
    """
    from fallback.storage.migrate import migrate as copy_into

    for line in copy_into(Settings.from_env().database, target):
        click.echo(line)
    click.echo("Now set FALLBACK_DATABASE to that URL on every instance.")
