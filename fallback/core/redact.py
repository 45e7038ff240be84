"""Redaction: a URL as it may be shown in reasons, logs and notifications, without credentials or query."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

# A URL with a scheme inside free text (an exception's message, say): up to whitespace or a quote. Punctuation
# that ends it ("...?key=s: refused", "(for ...?key=s).") is the sentence's: left out, it is not redacted away.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,:;!?)]")
UNPARSABLE = "(a URL that could not be parsed)"


def redact_url(url: str) -> str:
    """`url` without its user name, password, query and fragment: `http://u:p@h:8080/x?k=v` is `http://h:8080/x`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # a bracket or a port that does not parse: show nothing of it rather than a secret
        return UNPARSABLE
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address keeps its brackets
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact_text(text: str, *urls: str) -> str:
    """`text` with every URL in it redacted, and the secrets of `urls` removed wherever they appear alone.

    Libraries quote a failed URL in pieces (urllib3 says `... with url: /health?key=s3cr3t`), so the
    query, the password and the `user:password@` of each URL are struck out wherever they appear.
    """
    text = _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)
    for url in urls:
        for secret in _secrets_of(url):
            text = text.replace(secret, "***")
    return text


def _secrets_of(url: str) -> list[str]:
    """The pieces of `url` that must never be shown, longest first so that none is left half-replaced."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return [url]
    userinfo = parts.netloc.rpartition("@")[0]
    # A query value is struck out alone too, when it is long enough to be a secret: shorter ones would
    # strike digits out of unrelated text ("HTTP 503").
    values = [value for _, value in parse_qsl(parts.query, keep_blank_values=True) if len(value) >= 4]
    secrets = [
        userinfo + "@" if userinfo else "",
        "?" + parts.query if parts.query else "",
        parts.query,
        password or "",
        unquote(password or ""),
        *values,
    ]
    return sorted({secret for secret in secrets if secret}, key=len, reverse=True)
