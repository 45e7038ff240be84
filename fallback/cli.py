"""The `fallback` command: serve, check, probe, status, mode, export, drill, forget, purge."""

from __future__ import annotations

import atexit
import functools
import gettext
import json
import logging
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

import click

from . import __version__
from .config import ConfigError, Settings
from .export import csv_chunks, parse_bound
from .modes import change_mode
from .remote import Remote, RemoteError
from .state import parse_duration, utcnow
from .storage import Storage, StorageError, open_storage
from .storage.postgres import safe_url


class Failure(click.ClickException):
    """A one-line error, no traceback; exit status 2 like click's usage errors."""

    exit_code = 2


class Commands(click.Group):
    """The `fallback` group: a setting, a database or a value a user can fix ends any command the same way."""

    def invoke(self, ctx: click.Context):
        """Run the command; map the errors a user can fix to one line and exit status 2, never a traceback."""
        try:
            return super().invoke(ctx)
        except (ConfigError, StorageError, ValueError, RemoteError) as error:
            raise Failure(str(error)) from None


class Duration(click.ParamType):
    """A command-line duration, read by the same parser as the duration settings."""

    name = "duration"

    def convert(self, value, param, ctx) -> timedelta:
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
    return gettext.translation("messages", Path(__file__).parent / "translations", fallback=True)


def ngettext(singular: str, plural: str, number: int, **values) -> str:
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
    storage.webhooks.configure(settings.webhook_urls)  # `fallback mode` is a mode change like the admin's
    atexit.register(storage.close)
    return storage


def through_api(command):
    """The `--url` option (or FALLBACK_URL) of a command that can act on a running instance through its API."""
    return click.option(
        "--url",
        envvar="FALLBACK_URL",
        metavar="URL",
        help="Act on the instance running at URL through its control API (with FALLBACK_API_TOKEN), "
        "not on a local database.",
    )(command)


def installation_probe_key(settings: Settings) -> bytes | None:
    """The key of fallback's marks when its secret key is at hand (set, or in an existing SQLite database), else None.

    With it, `fallback check` recognises an answer from this fallback itself; without it, `check` still needs
    no database, and PostgreSQL is not asked (a probe must not wait on a database).
    """
    from .selfprobe import probe_key

    if settings.secret_key:
        return probe_key(settings.secret_key)
    if settings.is_postgres or not Path(settings.database).exists():
        return None
    try:
        return probe_key(load_storage(settings).secret_key()[0])
    except StorageError:
        return None


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fallback")
def cli() -> None:
    """fallback: a standby contact page for when your main site is down.

    Settings come from FALLBACK_* environment variables; see the README.
    """


@cli.command()
@click.option(
    "--host",
    help="Address to listen on [default: 127.0.0.1, or every interface (0.0.0.0) when the platform set $PORT].",
)
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on [default: $PORT or 8000].")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Web worker processes.")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True, help="Threads per worker.")
@click.option(
    "--checker/--no-checker",
    default=True,
    show_default=True,
    help="Run the health checker too (one per database, whatever the number of processes).",
)
def serve(host: str | None, port: int | None, workers: int, threads: int, checker: bool) -> None:
    """Run the web app and the health checker under gunicorn.

    Example:

        FALLBACK_MAIN_URL=https://www.example.com fallback serve --port 8000
    """
    from .server import bind_host
    from .server import serve as run_server

    settings = Settings.from_env()
    settings.require_main_url()
    load_storage(settings, create=True).close()
    run_server(settings, bind_host(host, os.environ), port or settings.port, workers, threads, checker)


@cli.command()
@click.argument("url", required=False)
def check(url: str | None) -> None:
    """Probe the main site once now; exit 0 if up, 1 if down.

    Example:

        fallback check https://www.example.com/health
    """
    settings = Settings.from_env()
    urls = [url] if url else list(settings.check_urls)
    if not urls:
        raise Failure("give a URL, or set FALLBACK_MAIN_URL or FALLBACK_CHECK_URLS")
    from .probe import probe  # requests, imported only by the commands that need it

    self_key = installation_probe_key(settings)
    all_ok = True
    for target in urls:
        result = probe(target, settings.check_timeout, settings.max_latency, settings.expect_text, self_key=self_key)
        verdict = "up" if result.ok else "down"
        status = f"HTTP {result.status}, " if result.status else ""
        click.echo(f"{verdict}: {result.url} ({status}{result.latency * 1000:.0f} ms) {result.reason}")
        all_ok = all_ok and result.ok
    sys.exit(0 if all_ok else 1)


@cli.command("probe")
@click.option(
    "--report-to",
    required=True,
    envvar="FALLBACK_URL",
    show_envvar=True,
    metavar="URL",
    help="The fallback instance to post verdicts to: its public URL.",
)
@click.option(
    "--token",
    envvar="FALLBACK_API_TOKEN",
    show_envvar=True,
    metavar="T",
    help="That instance's FALLBACK_API_TOKEN (better from the environment: a command line is visible to all).",
)
@click.option("--name", metavar="NAME", help='This vantage point\'s stable name [default: the host name + " probe"].')
def probe_agent(report_to: str, token: str | None, name: str | None) -> None:
    """Run a probe agent: probe the check URLs from this network and post each round's verdict to a fallback.

    Uses the checker's settings (FALLBACK_MAIN_URL or FALLBACK_CHECK_URLS, FALLBACK_CONTROL_URL, timeout,
    latency, expected text, fall, rise) and follows the instance's check interval. Keeps probing and
    retries with backoff while the instance is unreachable; a refused token or report exits 2. Needs no
    database.

    Example:

    \b
        FALLBACK_MAIN_URL=https://www.example.com FALLBACK_API_TOKEN=... \\
        fallback probe --report-to https://sorry.example.com --name "paris probe"
    """
    from .agent import run_agent

    run_agent(Settings.from_env(), report_to, token, name)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@through_api
def status(as_json: bool, url: str | None) -> None:
    """Show the state, the mode, since when, and how many leads are stored.

    Example:

        fallback status --json
        FALLBACK_API_TOKEN=... fallback status --url https://sorry.example.com
    """
    from .status import status_document

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
    click.echo(f"leads:  {document['leads']} (and {document['spam']} suspected spam)")
    if "followup" in document:  # the instance has SMTP set: its queue, read where the document was made
        queue = document["followup"]
        last = f", last error: {queue['last_error']}" if queue["last_error"] else ""
        click.echo(f"follow-up mail: {queue['pending']} pending, {queue['sent']} sent, {queue['failed']} failed{last}")
    click.echo(f"instance: {url}" if url else f"database: {document['database']}")


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


@cli.command()
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


@cli.command()
@click.option(
    "--since",
    metavar="T",
    help="Only leads last sent at or after T (ISO date or date-time, UTC unless an offset is given).",
)
@click.option("--until", metavar="T", help="Only leads last sent before T.")
@click.option(
    "-o", "--output", type=click.File("wb"), default="-", help="Write to this file [default: standard output]."
)
@through_api
def export(since: str | None, until: str | None, output, url: str | None) -> None:
    """Export the leads as CSV (suspected spam and drill leads left out).

    Example:

        fallback export --since 2026-11-28 -o leads.csv
    """
    lower, upper = parse_bound(since, "--since"), parse_bound(until, "--until")
    settings = Settings.from_env()
    if url:  # the export token may read leads too
        leads = Remote(url, settings.api_token or settings.export_token).leads(lower, upper)
    else:
        leads = load_storage(settings).leads.iter(lower, upper)
    for chunk in csv_chunks(leads):
        output.write(chunk)


@cli.command("mail-test")
@click.argument("address")
def mail_test(address: str) -> None:
    """Send one test follow-up message to ADDRESS through FALLBACK_SMTP_URL; exit 0 if accepted, else 1.

    Example:

        fallback mail-test me@example.org
    """
    from . import smtp
    from .mail import MailTemplates, followup_message, main_site_link
    from .paths import shipped_templates
    from .unsubscribe import UNSUBSCRIBE_PATH

    settings = Settings.from_env()
    if not (settings.smtp_url and settings.mail_from and settings.public_url):
        raise Failure("FALLBACK_SMTP_URL is not set: there is no follow-up mail to test")
    message = followup_message(
        MailTemplates(str(shipped_templates()), settings.templates),
        to=address,
        name="",
        language="en",
        site_name=settings.site_name or "",
        link=main_site_link(settings.main_url or settings.public_url, "/"),
        mail_from=settings.mail_from,
        unsubscribe_url=f"{settings.public_url.rstrip('/')}{UNSUBSCRIBE_PATH}?t=test",
        test=True,
    )
    try:
        smtp.send(settings.smtp_url, message)
    except smtp.MailRefused as refused:
        click.echo(f"not sent: {refused.answer}", err=True)
        raise SystemExit(1) from None
    click.echo(f"sent to {address}: the server accepted it")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the items as JSON (name, status, detail, advice).")
@click.option(
    "--resolver",
    metavar="HOST[:PORT]",
    help="Ask this DNS server for the main host's records [default: the system's resolver].",
)
@click.option(
    "--rehearse",
    is_flag=True,
    help="Force the page on (a minute at most), time it and send one drill lead through FALLBACK_PUBLIC_URL, "
    "read it back and erase it, then restore the mode exactly (needs the database).",
)
@click.option(
    "--expiry",
    type=Duration(),
    default="60s",
    metavar="DURATION",
    help="How long the rehearsal's forced mode lasts if drill is killed: 1 to 60 seconds [default: 60s].",
)
@click.option(
    "--load",
    "load_seconds",
    type=click.FloatRange(0.1, 300),
    metavar="SECONDS",
    help="Send a burst of visitor requests to FALLBACK_PUBLIC_URL for SECONDS (300 at most): requests/s and p99.",
)
@click.option(
    "--connections",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Connections the --load burst keeps open at once.",
)
@click.option("--notify-test", is_flag=True, help="Send a test notification to each FALLBACK_NOTIFY_URLS.")
def drill(
    as_json: bool,
    resolver: str | None,
    rehearse: bool,
    expiry: timedelta,
    load_seconds: float | None,
    connections: int,
    notify_test: bool,
) -> None:
    """Run the pre-show checklist: each item pass, warn or fail with why; exit 0 when nothing fails, else 1.

    Checks the main site (answers, Cache-Control), its DNS TTL and TLS certificate, the standby (secrets,
    public URL, redirect, page size, durable database) and the channels (notifications, SMTP). Needs no
    database, unless --rehearse.

    Example:

        fallback drill --rehearse --load 10 --notify-test --resolver 1.1.1.1
    """
    from .drill import failed, interruptible, parse_resolver, run_all, table
    from .drill.rehearsal import Interrupted

    if not timedelta(seconds=1) <= expiry <= timedelta(seconds=60):
        raise Failure("--expiry: between 1 and 60 seconds, so that a killed drill leaves nothing forced for long")
    server = None
    if resolver:
        try:
            server = parse_resolver(resolver)
        except ValueError:
            raise Failure(f"--resolver: expected HOST[:PORT], got {resolver!r}") from None
    settings = Settings.from_env()
    load = (load_seconds, connections) if load_seconds else None
    storage = load_storage(settings) if rehearse else None  # a missing database is refused before any check
    try:
        with interruptible():
            items = run_all(settings, server, notify_test, storage, expiry, load)
    except Interrupted as stopped:
        click.echo(f"drill interrupted during the rehearsal; mode: {stopped.restored.detail}", err=True)
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        click.echo("drill interrupted", err=True)
        raise SystemExit(130) from None
    if as_json:
        click.echo(json.dumps([item.as_dict() for item in items], indent=2))
    else:
        click.echo(table(items))
    sys.exit(1 if failed(items) else 0)


@cli.command()
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


@cli.command()
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

    for line in copy_into(Settings.from_env().database, target):
        click.echo(line)
    click.echo("Now set FALLBACK_DATABASE to that URL on every instance.")


def main() -> None:
    """Entry point of the `fallback` console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cli()
