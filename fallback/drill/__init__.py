"""`fallback drill`: the pre-show checklist, each item pass / warn / fail with why and what to do.

Modules: `items` (the item and the table), `site` (main site, DNS, TLS), `public` (the standby through its
public URL), `standby` (secrets, a durable database), `channels` (notifications, SMTP), `rehearsal`
(`--rehearse`), `load` (`--load`).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from datetime import timedelta
from types import FrameType
from typing import NoReturn
from urllib.parse import urlsplit

from fallback.core.settings import Settings
from fallback.drill.channels import notify_items, smtp_item
from fallback.drill.items import FAIL, PASS, WARN, Item, failed, table
from fallback.drill.public import HEALTHZ_PATH, public_url_item, visitor_items
from fallback.drill.site import MAX_TTL, cache_control_item, dns_item, main_site_items, parse_resolver, tls_item
from fallback.drill.standby import admission_item, database_item, secrets_items
from fallback.storage import Storage

__all__ = [
    "FAIL",
    "HEALTHZ_PATH",
    "MAX_TTL",
    "PASS",
    "WARN",
    "admission_item",
    "Item",
    "cache_control_item",
    "database_item",
    "dns_item",
    "failed",
    "interruptible",
    "main_site_items",
    "parse_resolver",
    "public_url_item",
    "run_drill",
    "secrets_items",
    "table",
    "tls_item",
]


def run_drill(
    settings: Settings,
    resolver: tuple[str, int] | None = None,
    notify_test: bool = False,
    page_from_rehearsal: bool = False,
) -> list[Item]:
    """Every item of the checklist, in order: main site, DNS, TLS, standby, channels.

    With `page_from_rehearsal`, the page's size is left to the rehearsal, which shows the page anyway.
    """
    main_url = settings.require_main_url()
    items = main_site_items(settings)
    host = urlsplit(main_url).hostname
    if host:
        items.append(dns_item(host, resolver, lifetime=max(settings.check_timeout, 2.0)))
    tls = tls_item(main_url, settings.check_timeout)
    if tls:
        items.append(tls)
    items.extend(secrets_items(settings))
    items.append(admission_item(settings))
    health = public_url_item(settings.public_url, settings.check_timeout)
    items.append(health)
    if settings.public_url and health.status == PASS:
        visitor = visitor_items(settings.public_url, main_url, settings.check_timeout)
        items.extend(item for item in visitor if not (page_from_rehearsal and item.name == "page size"))
    items.append(database_item(settings.database, timeout=settings.check_timeout))
    items.extend(notify_items(settings.notify_urls, notify_test))
    smtp = smtp_item(settings, max(settings.check_timeout, 5.0))
    if smtp:
        items.append(smtp)
    return items


def run_all(
    settings: Settings,
    resolver: tuple[str, int] | None,
    notify_test: bool,
    storage: Storage | None,
    expiry: timedelta,
    load: tuple[float, int] | None,
) -> list[Item]:
    """The checklist, then the rehearsal on `storage` (when given), then the load burst."""
    items = run_drill(settings, resolver, notify_test, page_from_rehearsal=storage is not None)
    unreachable = any(item.name == "standby public URL" and item.status == FAIL for item in items)
    if storage is not None and unreachable:  # forcing the page on would show nothing to anyone here
        items.append(
            Item(
                "rehearsal",
                FAIL,
                "not run: FALLBACK_PUBLIC_URL does not answer from here",
                "make the standby reachable at FALLBACK_PUBLIC_URL, then rehearse",
            )
        )
    elif storage is not None:
        from fallback.drill.rehearsal import rehearse

        items.extend(rehearse(settings, storage, expiry))
    if load is not None:
        from fallback.drill.load import load_item

        items.append(load_item(settings.public_url, *load))
    return items


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C does, so a rehearsal's `finally` restores the mode."""

    def interrupt(signum: int, frame: FrameType | None) -> NoReturn:
        raise KeyboardInterrupt(f"signal {signum}")

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
