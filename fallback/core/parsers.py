"""Parsers of setting values: text in, a checked value out, or ValueError saying what was expected.

They know nothing of variable names or the environment: `config` declares which variable uses which,
and turns a ValueError into a ConfigError naming the variable.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email.utils
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from fallback.core.durations import DURATION_FORMS, parse_seconds

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
LOGO_TYPES = {
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}
# The page must stay light on a phone: the logo is fetched once and cached, but still.
MAX_LOGO_BYTES = 64 * 1024
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour)\s*$")
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """At most `count` events per `seconds`."""

    count: int
    seconds: int


def is_postgres_url(database: str) -> bool:
    """Whether a FALLBACK_DATABASE value names a PostgreSQL server rather than a SQLite file."""
    return database.startswith(POSTGRES_SCHEMES)


def text(value: str) -> str:
    """Any text, as given."""
    return value


def duration(minimum: float) -> Callable[[str], float]:
    """A parser of durations (`5`, `5s`, `2m`, `1h`) in seconds, at least `minimum`."""
    expected = f"a duration of at least {minimum:g} s, such as {DURATION_FORMS}"

    def parse(value: str) -> float:
        try:
            seconds = parse_seconds(value)
        except ValueError:
            raise ValueError(expected) from None
        if seconds < minimum:
            raise ValueError(expected)
        return seconds

    return parse


def period_or_off(shortest: int, longest: int) -> Callable[[str], int | None]:
    """A parser of `off` (None) or a period of whole seconds from `shortest` to `longest`, written as a duration."""
    expected = f"`off`, or a period from {shortest // 60}m to {longest // 3600}h in whole seconds, such as 5m or 1h"

    def parse(value: str) -> int | None:
        if value.strip().lower() in _FALSE:
            return None
        try:
            seconds = parse_seconds(value)
        except ValueError:
            raise ValueError(expected) from None
        if not shortest <= seconds <= longest or seconds != int(seconds):
            raise ValueError(expected)
        return int(seconds)

    return parse


def whole(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """A parser of whole numbers from `minimum` (to `maximum`)."""
    expected = f"a whole number from {minimum} to {maximum}" if maximum is not None else f"a whole number ≥ {minimum}"

    def parse(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            raise ValueError(expected) from None
        if number < minimum or (maximum is not None and number > maximum):
            raise ValueError(expected)
        return number

    return parse


def boolean(value: str) -> bool:
    """true/false, yes/no, on/off or 1/0."""
    lowered = value.strip().lower()
    if lowered in _TRUE or lowered in _FALSE:
        return lowered in _TRUE
    raise ValueError("true or false")


def choice(*options: str) -> Callable[[str], str]:
    """A parser of one word among `options`, case-insensitive."""

    def parse(value: str) -> str:
        word = value.strip().lower()
        if word not in options:
            raise ValueError(" or ".join(options))
        return word

    return parse


def log_file(value: str) -> str | None:
    """Where a log goes: `-` (or `true`) for standard output, `false` for nowhere, or a file in an existing folder."""
    value = value.strip()
    if value == "-" or value.lower() in _TRUE:
        return "-"
    if value.lower() in _FALSE:
        return None
    path = Path(value).expanduser()
    if path.is_dir() or not path.parent.resolve().is_dir():
        raise ValueError("`-` (standard output), `false`, or a file path in an existing folder")
    return str(path.resolve())


def url(value: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """An http:// or https:// URL with a host (and a valid port, if any)."""
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError("an " + " or ".join(f"{scheme}://" for scheme in schemes) + " URL with a host")
    try:
        parts.port
    except ValueError:
        raise ValueError("a URL with a valid port") from None
    return value


def items(value: str) -> list[str]:
    """The non-empty parts of a comma-separated list."""
    return [part.strip() for part in value.split(",") if part.strip()]


def url_list(value: str) -> tuple[str, ...]:
    """Comma-separated http:// or https:// URLs."""
    return tuple(url(part) for part in items(value))


def smtp_url(value: str) -> str:
    """An smtp:// or smtps:// URL with a host."""
    return url(value, ("smtp", "smtps"))


def apprise_urls(value: str) -> tuple[str, ...]:
    """Comma-separated Apprise URLs, each one Apprise can use."""
    urls = items(value)
    if urls:
        import apprise  # loaded only when notifications are configured

        invalid = [each for each in urls if apprise.Apprise.instantiate(each) is None]
        if invalid:
            # Apprise URLs carry credentials: name the scheme, not the whole URL.
            schemes = ", ".join(each.split("://", 1)[0] + "://..." for each in invalid)
            raise ValueError(f"Apprise URLs (such as slack://, mailto://, json://); cannot use {schemes}")
    return tuple(urls)


def rate(value: str, can_be_off: bool = True) -> RateLimit | None:
    """`N/second`, `N/minute` or `N/hour`; `0` (when allowed) is None: no limit."""
    if can_be_off and value.strip() == "0":
        return None
    match = _RATE.match(value.lower())
    if not match or int(match.group(1)) < 1:
        raise ValueError("N/second, N/minute or N/hour (N ≥ 1)" + (", or 0 to turn it off" if can_be_off else ""))
    return RateLimit(int(match.group(1)), _UNIT_SECONDS[match.group(2)])


def admission_rate(value: str) -> float | None:
    """`off`, `N/second` or `N/minute`, as visitors per second; None when off."""
    if value.strip().lower() == "off":
        return None
    match = _RATE.match(value.lower())
    if not match or match.group(2) == "hour" or int(match.group(1)) < 1:
        raise ValueError("off, N/second or N/minute (N ≥ 1)")
    return int(match.group(1)) / _UNIT_SECONDS[match.group(2)]


def sending_rate(value: str) -> RateLimit:
    """`N/second`, `N/minute` or `N/hour`, never off."""
    limit = rate(value, can_be_off=False)
    assert limit is not None
    return limit


def email_address(value: str) -> str:
    """An e-mail address, normalised."""
    from email_validator import EmailNotValidError, validate_email  # only when an address is set

    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValueError("an e-mail address") from None


def mailbox(value: str) -> str:
    """A sender, `Name <address>` or an address, as e-mail headers take it."""
    name, address = email.utils.parseaddr(value.strip())
    local, _, domain = address.rpartition("@")
    if not local or "." not in domain:
        raise ValueError("a sender such as 'Shop <news@example.com>' or news@example.com")
    return email.utils.formataddr((name, address)) if name else address


def webhook_secret(value: str) -> str:
    """A Standard Webhooks signing secret: `whsec_` followed by base64."""
    expected = "whsec_ followed by base64 (a Standard Webhooks secret)"
    prefix, _, key = value.strip().partition("_")
    try:
        decoded = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(expected) from None
    if prefix != "whsec" or not decoded:
        raise ValueError(expected)
    return value.strip()


def color(value: str) -> str:
    """A colour as #rrggbb, lower-cased."""
    if not _COLOR.match(value.strip()):
        raise ValueError("a colour as #rrggbb")
    return value.strip().lower()


def logo(value: str) -> str:
    """The absolute path of an existing, small .svg, .png, .jpg or .webp file."""
    path = Path(value).expanduser()
    if path.suffix.lower() not in LOGO_TYPES or not path.is_file():
        raise ValueError("an existing .svg, .png, .jpg or .webp file")
    if path.stat().st_size > MAX_LOGO_BYTES:
        raise ValueError(f"a logo file of at most {MAX_LOGO_BYTES // 1024} KB")
    return str(path.resolve())


def folder(value: str) -> str:
    """The absolute path of an existing folder."""
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ValueError("an existing folder of templates")
    return str(path.resolve())


def database(value: str) -> str:
    """A postgresql:// URL as given, or the absolute path of a SQLite file in an existing folder."""
    value = value.strip()
    if is_postgres_url(value):
        return value
    if "://" in value:
        raise ValueError("a SQLite file path or a postgresql:// URL")
    path = Path(value).expanduser()
    if path.is_dir():
        raise ValueError("a SQLite file path, not a folder")
    if not path.parent.resolve().is_dir():
        raise ValueError("a SQLite file path in an existing folder")
    return str(path.resolve())
