"""Settings: read once from the environment into one typed, validated object."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from .redact import redact_url

PREFIX = "FALLBACK_"


class ConfigError(ValueError):
    """A setting that cannot be used; its message names the variable and what it expected."""

    def __init__(self, variable: str, expected: str, value: str | None = None, secret: bool = False):
        shown = "" if value is None or secret else f", got {value!r}"
        super().__init__(f"{variable}: expected {expected}{shown}")
        self.variable = variable


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """At most `count` events per `seconds` for one client address."""

    count: int
    seconds: int


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting of SPEC section 2, parsed and checked."""

    main_url: str | None = None
    check_urls: tuple[str, ...] = ()
    control_url: str | None = None
    check_interval: float = 5.0
    check_timeout: float = 3.0
    fall: int = 3
    rise: int = 2
    max_latency: float = 2.0
    expect_text: str | None = None
    database: str = "fallback.db"
    secret_key: str | None = None
    admin_password: str | None = None
    export_token: str | None = None
    form_min_seconds: float = 3.0
    trusted_proxies: int = 0
    rate_limit: RateLimit | None = RateLimit(60, 60)
    require_consent: bool = True
    contact_email: str | None = None
    notify_urls: tuple[str, ...] = ()
    site_name: str = "our site"
    brand_color: str = "#0b57d0"
    logo: str | None = None
    headline: str | None = None
    message: str | None = None
    templates: str | None = None
    port: int = 8000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (the process environment by default)."""
        return cls._read(_Reader(os.environ if environ is None else environ))

    @classmethod
    def variables(cls) -> list[str]:
        """The name of every environment variable the settings read, in reading order."""
        reader = _Reader({})
        cls._read(reader)
        return reader.names

    @classmethod
    def _read(cls, env: _Reader) -> Settings:
        main_url = env.url("MAIN_URL")
        check_urls = env.url_list("CHECK_URLS") or ((main_url,) if main_url else ())
        default_name = urlsplit(main_url).hostname if main_url else "our site"
        return cls(
            main_url=main_url,
            check_urls=check_urls,
            control_url=env.url("CONTROL_URL"),
            check_interval=env.number("CHECK_INTERVAL", 5.0, minimum=0.1),
            check_timeout=env.number("CHECK_TIMEOUT", 3.0, minimum=0.1),
            fall=env.whole("FALL", 3, minimum=1),
            rise=env.whole("RISE", 2, minimum=1),
            max_latency=env.number("MAX_LATENCY", 2.0, minimum=0.01),
            expect_text=env.text("EXPECT_TEXT"),
            database=env.database(),
            secret_key=env.text("SECRET_KEY"),
            admin_password=env.text("ADMIN_PASSWORD"),
            export_token=env.text("EXPORT_TOKEN"),
            form_min_seconds=env.number("FORM_MIN_SECONDS", 3.0, minimum=0.0),
            trusted_proxies=env.whole("TRUSTED_PROXIES", 0, minimum=0),
            rate_limit=env.rate_limit("RATE_LIMIT", "60/minute"),
            require_consent=env.boolean("REQUIRE_CONSENT", True),
            contact_email=env.email("CONTACT_EMAIL"),
            notify_urls=env.notify_urls("NOTIFY_URLS"),
            site_name=env.text("SITE_NAME") or default_name or "our site",
            brand_color=env.color("BRAND_COLOR", "#0b57d0"),
            logo=env.logo("LOGO"),
            headline=env.text("HEADLINE"),
            message=env.text("MESSAGE"),
            templates=env.folder("TEMPLATES"),
            port=env.whole("PORT", 8000, minimum=1, maximum=65535, prefixed=False),
        )

    def require_main_url(self) -> str:
        """The main URL, or a ConfigError saying it is needed."""
        if not self.main_url:
            raise ConfigError(PREFIX + "MAIN_URL", "the main site's base URL, such as https://www.example.com")
        return self.main_url

    @property
    def is_postgres(self) -> bool:
        """Whether the database setting names a PostgreSQL server."""
        return self.database.startswith(("postgresql://", "postgres://"))


_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
LOGO_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".webp": "image/webp"}
# The page must stay light on a phone: the logo is fetched once and cached, but still.
MAX_LOGO_BYTES = 64 * 1024
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour)\s*$")
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class _Reader:
    """Reads and checks one variable at a time; empty values count as unset."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ
        self.names: list[str] = []

    def raw(self, name: str, prefixed: bool = True) -> tuple[str, str | None]:
        variable = PREFIX + name if prefixed else name
        self.names.append(variable)
        value = self.environ.get(variable)
        if value is not None and value.strip() == "":
            value = None
        return variable, value

    def text(self, name: str) -> str | None:
        return self.raw(name)[1]

    def text_list(self, name: str) -> list[str]:
        value = self.text(name)
        return [part.strip() for part in value.split(",") if part.strip()] if value else []

    def number(self, name: str, default: float, minimum: float) -> float:
        variable, value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not number >= minimum or number == float("inf"):
            raise ConfigError(variable, f"a number of seconds ≥ {minimum:g}", value)
        return number

    def whole(self, name: str, default: int, minimum: int, maximum: int | None = None, prefixed: bool = True) -> int:
        variable, value = self.raw(name, prefixed)
        if value is None:
            return default
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"≥ {minimum}"
        try:
            number = int(value.strip())
        except ValueError:
            raise ConfigError(variable, f"a whole number {bounds}", value) from None
        if number < minimum or (maximum is not None and number > maximum):
            raise ConfigError(variable, f"a whole number {bounds}", value)
        return number

    def boolean(self, name: str, default: bool) -> bool:
        variable, value = self.raw(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(variable, "true or false", value)

    def url(self, name: str) -> str | None:
        variable, value = self.raw(name)
        if value is None:
            return None
        return _check_url(variable, value.strip())

    def url_list(self, name: str) -> tuple[str, ...]:
        return tuple(_check_url(PREFIX + name, part) for part in self.text_list(name))

    def notify_urls(self, name: str) -> tuple[str, ...]:
        urls = self.text_list(name)
        if urls:
            import apprise  # loaded only when notifications are configured

            invalid = [url for url in urls if apprise.Apprise.instantiate(url) is None]
            if invalid:
                # Apprise URLs carry credentials: name the scheme, not the whole URL.
                schemes = ", ".join(url.split("://", 1)[0] + "://..." for url in invalid)
                expected = f"Apprise URLs (such as slack://, mailto://, json://); cannot use {schemes}"
                raise ConfigError(PREFIX + name, expected)
        return tuple(urls)

    def rate_limit(self, name: str, default: str) -> RateLimit | None:
        variable, value = self.raw(name)
        value = default if value is None else value
        if value.strip() == "0":
            return None
        match = _RATE.match(value.lower())
        if not match or int(match.group(1)) < 1:
            raise ConfigError(variable, "N/second, N/minute or N/hour (N ≥ 1), or 0 to turn it off", value)
        return RateLimit(int(match.group(1)), _UNIT_SECONDS[match.group(2)])

    def email(self, name: str) -> str | None:
        variable, value = self.raw(name)
        if value is None:
            return None
        from email_validator import EmailNotValidError, validate_email  # only when an address is set

        try:
            return validate_email(value.strip(), check_deliverability=False).normalized
        except EmailNotValidError:
            raise ConfigError(variable, "an e-mail address", value) from None

    def color(self, name: str, default: str) -> str:
        variable, value = self.raw(name)
        if value is None:
            return default
        if not _COLOR.match(value.strip()):
            raise ConfigError(variable, "a colour as #rrggbb", value)
        return value.strip().lower()

    def logo(self, name: str) -> str | None:
        variable, value = self.raw(name)
        if value is None:
            return None
        path = Path(value).expanduser()
        if path.suffix.lower() not in LOGO_TYPES or not path.is_file():
            raise ConfigError(variable, "an existing .svg, .png, .jpg or .webp file", value)
        if path.stat().st_size > MAX_LOGO_BYTES:
            raise ConfigError(variable, f"a logo file of at most {MAX_LOGO_BYTES // 1024} KB", value)
        return str(path.resolve())

    def folder(self, name: str) -> str | None:
        variable, value = self.raw(name)
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_dir():
            raise ConfigError(variable, "an existing folder of templates", value)
        return str(path.resolve())

    def database(self) -> str:
        variable, value = self.raw("DATABASE")
        if value is None:
            value = "fallback.db"
        value = value.strip()
        if value.startswith(("postgresql://", "postgres://")):
            return value
        if "://" in value:
            raise ConfigError(variable, "a SQLite file path or a postgresql:// URL", value, secret=True)
        path = Path(value).expanduser()
        if path.is_dir():
            raise ConfigError(variable, "a SQLite file path, not a folder", value)
        if not path.parent.resolve().is_dir():
            raise ConfigError(variable, "a SQLite file path in an existing folder", value)
        return str(path.resolve())


def _check_url(variable: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(variable, "an http:// or https:// URL with a host", redact_url(value))
    try:
        parts.port
    except ValueError:
        raise ConfigError(variable, "a URL with a valid port", redact_url(value)) from None
    return value
