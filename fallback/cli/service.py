"""The commands that run or probe: serve, check, probe (the agent)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from fallback.cli.common import Failure, load_storage
from fallback.core.settings import Settings
from fallback.storage import StorageError


def installation_probe_key(settings: Settings) -> bytes | None:
    """The key of fallback's marks when its secret key is at hand (set, or in an existing SQLite database), else None.

    With it, `fallback check` recognises an answer from this fallback itself; without it, `check` still needs
    no database, and PostgreSQL is not asked (a probe must not wait on a database).
    """
    from fallback.checking.selfprobe import probe_key

    if settings.secret_key:
        return probe_key(settings.secret_key)
    if settings.is_postgres or not Path(settings.database).exists():
        return None
    try:
        return probe_key(load_storage(settings).secret_key()[0])
    except StorageError:
        return None


@click.command()
@click.option(
    "--host",
    help="Address to listen on [default: 127.0.0.1, or every interface (0.0.0.0) when the platform set $PORT].",
)
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on [default: $PORT or 8000].")
@click.option("--workers", type=click.IntRange(1, 64), help="Web worker processes [default: $WEB_CONCURRENCY or 2].")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True, help="Threads per worker.")
@click.option(
    "--checker/--no-checker",
    default=True,
    show_default=True,
    help="Run the health checker too (one per database, whatever the number of processes).",
)
def serve(host: str | None, port: int | None, workers: int | None, threads: int, checker: bool) -> None:
    """Run the web app and the health checker under gunicorn.

    Example:

        FALLBACK_MAIN_URL=https://www.example.com fallback serve --port 8000
    """
    from fallback.serving.server import bind_host
    from fallback.serving.server import serve as run_server

    settings = Settings.from_env(need_main_url=True)
    load_storage(settings, create=True).close()
    workers = workers or settings.web_concurrency
    run_server(settings, bind_host(host, os.environ), port or settings.port, workers, threads, checker)


@click.command()
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
    from fallback.checking.probe import probe

    self_key = installation_probe_key(settings)
    all_ok = True
    for target in urls:
        result = probe(target, settings.check_timeout, settings.max_latency, settings.expect_text, self_key=self_key)
        verdict = "up" if result.ok else "down"
        status = f"HTTP {result.status}, " if result.status else ""
        click.echo(f"{verdict}: {result.url} ({status}{result.latency * 1000:.0f} ms) {result.reason}")
        all_ok = all_ok and result.ok
    sys.exit(0 if all_ok else 1)


@click.command("probe")
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
    from fallback.checking.agent import run_agent

    run_agent(Settings.from_env(), report_to, token, name)
