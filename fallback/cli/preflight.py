"""The commands that rehearse before the show: drill (the checklist) and mail-test."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import click

from fallback.cli.common import Duration, Failure, load_storage
from fallback.core.settings import Settings


@click.command("mail-test")
@click.argument("address")
def mail_test(address: str) -> None:
    """Send one test follow-up message to ADDRESS through FALLBACK_SMTP_URL; exit 0 if accepted, else 1.

    Example:

        fallback mail-test me@example.org
    """
    from fallback.core.paths import shipped_templates
    from fallback.outbound import smtp
    from fallback.outbound.mail import MailTemplates, followup_message, main_site_link
    from fallback.outbound.unsubscribe_token import UNSUBSCRIBE_PATH

    settings = Settings.from_env()
    if not (settings.smtp_url and settings.mail_from and settings.public_url):
        raise Failure("FALLBACK_SMTP_URL is not set: there is no follow-up mail to test")
    message = followup_message(
        MailTemplates(str(shipped_templates()), settings.templates),
        to=address,
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


@click.command()
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
    from fallback.drill import failed, interruptible, parse_resolver, run_all, table
    from fallback.drill.rehearsal import Interrupted

    if not timedelta(seconds=1) <= expiry <= timedelta(seconds=60):
        raise Failure("--expiry: between 1 and 60 seconds, so that a killed drill leaves nothing forced for long")
    server = None
    if resolver:
        try:
            server = parse_resolver(resolver)
        except ValueError:
            raise Failure(f"--resolver: expected HOST[:PORT], got {resolver!r}") from None
    settings = Settings.from_env(need_main_url=True)
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
