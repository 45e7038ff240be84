"""The standby as visitors reach it, through FALLBACK_PUBLIC_URL: its health, the redirect, the page's size."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fallback.core.redact import redact_url
from fallback.drill.items import FAIL, PASS, WARN, Item

if TYPE_CHECKING:
    import requests

HEALTHZ_PATH = "/_fallback/healthz"
STATUS_PATH = "/_fallback/status.json"
MAX_PAGE_BYTES = 20 * 1024  # SPEC's quality floor: the page under 20 KB over the wire
MAX_READ = 1024 * 1024  # a body is read this far at most: an endless one must not hold drill
# The codings `_decoded` reads. Not br: a proxy answering br would hide the form from the rehearsal, and the size
# measured with gzip is, if anything, a little above a browser's.
DECODED = ("gzip", "deflate")
# What a browser sends: the page is measured as a browser would receive it, compressed if the server compresses.
BROWSER_HEADERS = {
    "Accept": "text/html,application/xhtml+xml",
    "Accept-Encoding": ", ".join(DECODED),
    "User-Agent": "fallback-drill",
}


@dataclasses.dataclass(frozen=True)
class Fetched:
    """One answer as it came over the wire: status, headers, the body's bytes as sent (compressed or not)."""

    status: int
    headers: dict[str, str]
    wire_bytes: int
    text: str
    seconds: float


def fetch(session: requests.Session, url: str, timeout: float) -> Fetched:
    """GET `url` as a browser would, without following redirects; the body counted as it came over the wire."""
    started = time.monotonic()
    with session.get(url, timeout=timeout, allow_redirects=False, stream=True, headers=BROWSER_HEADERS) as response:
        raw = _wire_body(response)
        encoding = response.headers.get("Content-Encoding", "")
        body = raw if not encoding else _decoded(raw, encoding)
        text = body.decode(response.encoding or "utf-8", "replace")
        return Fetched(response.status_code, dict(response.headers), len(raw), text, time.monotonic() - started)


def _wire_body(response: requests.Response) -> bytes:
    """The body as it came over the wire (1 MB and a byte at most); a broken read as requests' own error."""
    import requests
    import urllib3

    try:
        return response.raw.read(MAX_READ + 1, decode_content=False) or b""
    except urllib3.exceptions.HTTPError as error:  # raw reads are urllib3's: requests wraps only its iterators
        raise requests.ConnectionError(str(error)) from None


def _decoded(raw: bytes, encoding: str) -> bytes:
    """A compressed body decoded (1 MB at most), to read the form in it; the raw bytes when it cannot be."""
    import zlib

    if encoding in DECODED:
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
            return inflater.decompress(raw, MAX_READ)
        except zlib.error:
            return raw
    return raw


def public_url_item(public_url: str | None, timeout: float) -> Item:
    """Whether FALLBACK_PUBLIC_URL answers /_fallback/healthz with 200 from where drill runs."""
    import requests

    name = "standby public URL"
    if not public_url:
        return Item(
            name,
            WARN,
            "FALLBACK_PUBLIC_URL is not set: nothing tells where visitors reach fallback",
            "set FALLBACK_PUBLIC_URL to the standby's address and run drill again",
        )
    url = public_url.rstrip("/") + HEALTHZ_PATH
    shown = redact_url(url)
    try:
        with requests.Session() as session:
            response = fetch(session, url, timeout)
    except requests.RequestException as error:
        return Item(
            name,
            FAIL,
            f"{shown} is unreachable ({type(error).__name__})",
            "make the standby reachable at FALLBACK_PUBLIC_URL (DNS, TLS, firewall), or fix the setting",
        )
    if response.status != 200:
        reason = response.text.strip()[:40]
        return Item(
            name,
            FAIL,
            f"{shown} answered HTTP {response.status} {reason}".rstrip(),
            "see the standby's log: its database must be writable and its checker running",
        )
    return Item(name, PASS, f"{shown} answered 200")


def served_now(session: requests.Session, public_url: str, timeout: float) -> str | None:
    """What visitors get now by the public status document (`up`: redirected, `down`: the page), or None."""
    import requests

    try:
        status = json.loads(fetch(session, public_url.rstrip("/") + STATUS_PATH, timeout).text)
    except (requests.RequestException, ValueError):
        return None
    if not isinstance(status, dict):
        return None
    # Its `state` is the forced mode while one is in force (Flag.as_status): `down` is the page, whoever decided.
    return "down" if status.get("state") == "down" else "up"


def visitor_items(public_url: str, main_url: str, timeout: float) -> list[Item]:
    """A visitor path through the public URL: redirected to the main site while it is up, or the page (and its
    size) while it is down."""
    import requests

    name = "visitor path"
    with requests.Session() as session:
        try:
            answer = fetch(session, public_url.rstrip("/") + "/", timeout)
        except requests.RequestException as error:
            return [
                Item(
                    name,
                    FAIL,
                    f"{redact_url(public_url)}/ is unreachable ({type(error).__name__})",
                    "make the standby reachable at FALLBACK_PUBLIC_URL",
                )
            ]
        served = served_now(session, public_url, timeout)
    if answer.status in (302, 307):
        return [redirect_item(answer.headers.get("Location", ""), main_url)]
    if answer.status == 503:
        page = page_size_item(answer)
        if served == "down":
            shown = Item(name, PASS, "the page is shown now (the site is down, or the page is forced on)")
            return [shown, page]
        said = "the public status could not be read" if served is None else "the status says visitors are redirected"
        return [Item(name, FAIL, f"the page is shown although {said}", "see the standby's log"), page]
    return [
        Item(
            name,
            FAIL,
            f"/ answered HTTP {answer.status}, neither a redirect nor the page",
            "check what sits in front of fallback at FALLBACK_PUBLIC_URL (a proxy, a CDN rule)",
        )
    ]


def redirect_item(location: str, main_url: str) -> Item:
    """Whether a visitor path redirected to the main site's origin."""
    name = "visitor path"
    target, main = urlsplit(location), urlsplit(main_url)
    if (target.scheme, target.netloc) != (main.scheme, main.netloc):
        return Item(
            name,
            FAIL,
            f"redirected to {redact_url(location)}, not to the main site",
            "FALLBACK_MAIN_URL must be the main site visitors are sent to",
        )
    return Item(name, PASS, f"redirected to the main site ({redact_url(location)})")


def page_size_item(answer: Fetched) -> Item:
    """Whether the page came under 20 KB over the wire (as sent: compressed when the server compresses)."""
    encoding = answer.headers.get("Content-Encoding") or "not compressed"
    more = " or more" if answer.wire_bytes > MAX_READ else ""
    detail = f"{answer.wire_bytes:,} bytes{more} over the wire ({encoding})"
    if answer.wire_bytes >= MAX_PAGE_BYTES:
        return Item(
            "page size",
            WARN,
            f"{detail}: 20 KB or more",
            "slim the page (logo, FALLBACK_TEMPLATES), or compress it in the proxy",
        )
    return Item("page size", PASS, detail)
