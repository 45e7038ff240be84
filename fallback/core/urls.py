"""The main site's addresses: where a visitor path is sent, never anywhere else (no open redirect)."""

from __future__ import annotations

import functools
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

from werkzeug.urls import iri_to_uri

# Characters kept as they are in a redirected path and query; everything else is percent-encoded.
PATH_SAFE = "/!$&'()*+,;=:@-._~%"


QUERY_SAFE = "=&;%+/?:@!$'()*,-._~"


@functools.lru_cache(maxsize=4)
def main_url_parts(main_url: str) -> SplitResult:
    """The main URL as plain ASCII (an international domain name in its IDNA form), parsed once."""
    return urlsplit(iri_to_uri(main_url))


def same_host(first: str, second: str) -> bool:
    """Whether two Host values name one site: same name, and same port where both differ from 80/443."""

    def split(netloc: str) -> tuple[str, str | None]:
        name, _, port = netloc.lower().rpartition(":") if netloc.count(":") == 1 else (netloc.lower(), "", "")
        return name, (None if port in ("", "80", "443") else port)

    return split(first) == split(second)


def redirect_location(main_url: str, path: str, query: bytes, host: str) -> str | None:
    """The same path and query on the main site, or None when that would loop back here.

    Scheme and host always come from the main URL: the visitor's input is only ever a path and
    a query, both percent-encoded to plain ASCII.
    """
    main = main_url_parts(main_url)
    if same_host(main.netloc, host):
        return None
    target_path = main.path.rstrip("/") + "/" + quote(path.lstrip("/"), safe=PATH_SAFE)
    return urlunsplit((main.scheme, main.netloc, target_path, quote(query, safe=QUERY_SAFE), ""))
