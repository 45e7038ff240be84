"""Settings: declared once as data (variable, default, parser, help), read once from the environment.

`python -m fallback.core.settings docs/configuration.md` rewrites the docs' settings table from the declaration;
tests/test_docs.py checks that it is up to date.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from fallback.core import parsers as p
from fallback.core.parsers import LOGO_TYPES, MAX_LOGO_BYTES, RateLimit, is_postgres_url

__all__ = ["LOGO_TYPES", "MAX_LOGO_BYTES", "ConfigError", "RateLimit", "Settings", "Variable", "markdown_table"]

PREFIX = "FALLBACK_"
# The page's name for the site when neither FALLBACK_SITE_NAME nor the main URL gives one.
UNNAMED_SITE = "our site"
# Log-in failures are limited (fallback.logins); the password's length is what makes that limit enough.
MIN_PASSWORD_LENGTH = 12
# A lead digest more often than once a minute would be a message per lead; one a day is the longest that reads as news.
LEAD_DIGEST_SHORTEST, LEAD_DIGEST_LONGEST = 60, 86400
# Wrong tokens are limited too, but a token is a machine's: 24 random characters cannot be guessed at all.
MIN_TOKEN_LENGTH = 24
TOKEN_RECIPE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
TOKENS = ("export_token", "api_token", "metrics_token")
# The platforms' own variables (Heroku, Scalingo, Dokku, Clever Cloud set them), read without the prefix.
UNPREFIXED = ("PORT", "WEB_CONCURRENCY")


class ConfigError(ValueError):
    """A setting that cannot be used; its message names the variable and what it expected."""

    def __init__(self, variable: str, expected: str, value: str | None = None, secret: bool = False):
        # A URL's credentials are never shown, whatever the variable (SPEC 5, Privacy).
        hidden = value is None or secret or _has_credentials(value)
        shown = "" if hidden else f", got {value!r}"
        super().__init__(f"{variable}: expected {expected}{shown}")
        self.variable = variable
        self.parts = [self]

    @classmethod
    def all_of(cls, errors: list[ConfigError]) -> ConfigError:
        """One error naming every setting in `errors` (one per variable): a user fixes them all in one go."""
        if len(errors) == 1:
            return errors[0]
        combined = cls.__new__(cls)
        lines = "\n".join(f"  {error}" for error in errors)
        ValueError.__init__(combined, f"{len(errors)} settings are missing or wrong:\n{lines}")
        combined.variable = errors[0].variable
        combined.parts = [part for error in errors for part in error.parts]
        return combined


def missing_main_url() -> ConfigError:
    """FALLBACK_MAIN_URL is needed here and not set."""
    return ConfigError(PREFIX + "MAIN_URL", "the main site's base URL, such as https://www.example.com")


def _has_credentials(value: str) -> bool:
    try:
        return urlsplit(value.strip()).password is not None
    except ValueError:
        return "@" in value


@dataclasses.dataclass(frozen=True)
class Variable:
    """One environment variable: its name, its default as a user would write it, its parser and its help."""

    name: str
    default: str | None
    parse: Callable[[str], Any]
    help: str
    # The docs' wording of the default, when it is not simply the default's text.
    shown_default: str | None = None
    # Never echo the value in an error: it may hold a password.
    secret: bool = False

    def read(self, environ: Mapping[str, str]) -> Any:
        """The parsed value from `environ` (blank counts as unset), the parsed default, or None."""
        value = environ.get(self.name)
        if value is None or not value.strip():
            value = self.default
        if value is None:
            return None
        try:
            return self.parse(value)
        except ValueError as error:
            raise ConfigError(self.name, str(error), value, self.secret) from None

    def shown_in_docs(self) -> str:
        """The default as the docs' settings table shows it."""
        return self.shown_default or (f"`{self.default}`" if self.default else "none")


def setting(
    name: str,
    default: str | None,
    parse: Callable[[str], Any],
    help: str,
    *,
    shown_default: str | None = None,
    secret: bool = False,
    as_given: bool = False,
) -> Any:
    """A Settings field declared by its variable; its Python default is the parsed default (or the text, `as_given`)."""
    variable = Variable(name if name in UNPREFIXED else PREFIX + name, default, parse, help, shown_default, secret)
    # `as_given` keeps a default whose parsing looks at the file system from being parsed at import time.
    initial = None if default is None or as_given else parse(default)
    return dataclasses.field(default=default if as_given else initial, metadata={"variable": variable})


def secret(name: str, help: str, parse: Callable[[str], Any] = p.text, shown_default: str | None = None) -> Any:
    """A setting whose value is never shown (tokens, passwords, keys), unset by default."""
    return setting(name, None, parse, help, shown_default=shown_default, secret=True)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting of SPEC section 2, parsed and checked; built by `from_env`, never at import time."""

    main_url: str | None = setting(
        "MAIN_URL",
        None,
        p.url,
        "base URL of the main site; redirect target while it is up",
        shown_default="none (required to serve)",
    )
    check_urls: tuple[str, ...] = setting(
        "CHECK_URLS", "", p.url_list, "comma-separated URLs probed on the main site", shown_default="the main URL"
    )
    control_url: str | None = setting(
        "CONTROL_URL",
        None,
        p.url,
        "a URL that should always answer; if it fails too, the checker doubts its own network and does not flip",
    )
    check_interval: float = setting("CHECK_INTERVAL", "5", p.duration(0.1), "seconds between probes while healthy")
    check_timeout: float = setting("CHECK_TIMEOUT", "3", p.duration(0.1), "seconds before a probe counts as failed")
    fall: int = setting("FALL", "3", p.whole(1), "consecutive failed probes that declare the site down")
    rise: int = setting("RISE", "2", p.whole(1), "consecutive good probes that declare it up again")
    max_latency: float = setting(
        "MAX_LATENCY", "2.0", p.duration(0.01), 'a slower answer counts as a failed probe ("slow is down")'
    )
    expect_text: str | None = setting("EXPECT_TEXT", None, p.text, "text the probed page must contain")
    database: str = setting(
        "DATABASE",
        "fallback.db",
        p.database,
        "a SQLite file path (one machine), or a `postgresql://` URL for several instances sharing one database",
        shown_default="`fallback.db` in the working directory",
        as_given=True,
    )
    secret_key: str | None = secret(
        "SECRET_KEY",
        "signs form tokens and admin sessions; without it, one is generated, stored in the database, and the log"
        " says so",
    )
    admin_password: str | None = secret(
        "ADMIN_PASSWORD",
        "admin password, 12 characters at least; without it the admin area answers 404 and the log says why",
    )
    export_token: str | None = secret(
        "EXPORT_TOKEN",
        "bearer token for scripted CSV export, 24 characters at least; without it only a logged-in admin can export",
    )
    form_min_seconds: float = setting(
        "FORM_MIN_SECONDS",
        "3",
        p.duration(0),
        "a form sent sooner after the page was rendered is treated as a bot; `0` turns the time trap off. A rendered"
        " form stays valid for 24 hours",
    )
    trusted_proxies: int = setting(
        "TRUSTED_PROXIES", "0", p.whole(0), "how many proxy hops' `X-Forwarded-*` headers to trust"
    )
    rate_limit: RateLimit | None = setting(
        "RATE_LIMIT", "60/minute", p.rate, "`N/second`, `N/minute` or `N/hour` per client address; `0` turns it off"
    )
    require_consent: bool = setting("REQUIRE_CONSENT", "true", p.boolean, "whether the consent box must be ticked")
    contact_email: str | None = setting(
        "CONTACT_EMAIL", None, p.email_address, "an address shown on the page for people who would rather write"
    )
    notify_urls: tuple[str, ...] = setting(
        "NOTIFY_URLS",
        "",
        p.apprise_urls,
        "comma-separated Apprise URLs (`slack://...`, `mailto://...`, `json://host/path`, ...) where each flip and"
        " forced mode is announced once; an invalid URL stops start-up",
        secret=True,
    )
    notify_leads: int | None = setting(
        "NOTIFY_LEADS",
        "off",
        p.period_or_off(LEAD_DIGEST_SHORTEST, LEAD_DIGEST_LONGEST),
        "`off`, or a period from `1m` to `24h` (`5m`, `1h`): at most once per period, tell the FALLBACK_NOTIFY_URLS"
        " how many new leads came in, with the dashboard's address (FALLBACK_PUBLIC_URL) and never a visitor's"
        " address or words; nothing is sent for a period without a new lead",
    )
    site_name: str = setting(
        "SITE_NAME", None, p.text, "the name shown on the page", shown_default="the main URL's host"
    )
    brand_color: str = setting(
        "BRAND_COLOR",
        "#0b57d0",
        p.color,
        "the brand colour (`#rrggbb`) of buttons and links; text on it is chosen to keep WCAG AA contrast",
    )
    logo: str | None = setting(
        "LOGO",
        None,
        p.logo,
        "an `.svg`, `.png`, `.jpg` or `.webp` file (64 KB at most) shown instead of the site name, served by"
        " fallback itself",
    )
    headline: str | None = setting(
        "HEADLINE", None, p.text, "the page's headline", shown_default='"We\'ll be right back" (translated)'
    )
    message: str | None = setting(
        "MESSAGE", None, p.text, "the sentence under the headline", shown_default="a short apology (translated)"
    )
    templates: str | None = setting(
        "TEMPLATES", None, p.folder, "a folder whose templates override the shipped ones (rebranding without forking)"
    )
    public_url: str | None = setting(
        "PUBLIC_URL",
        None,
        p.url,
        "the URL where visitors reach fallback (`https://sorry.example.com`); used for links in mails, the `Secure`"
        " flag of cookies and HSTS when it is `https`, and by `fallback drill`",
    )
    smtp_url: str | None = setting(
        "SMTP_URL",
        None,
        p.smtp_url,
        "where follow-up mail is sent: `smtp://user:password@host:587` (STARTTLS when the server offers it;"
        " credentials are never sent unencrypted) or `smtps://...:465`; without it, no follow-up is offered",
        secret=True,
    )
    mail_from: str | None = setting(
        "MAIL_FROM",
        None,
        p.mailbox,
        "the sender of follow-up mail, `Name <address>` or an address",
        shown_default="none (required with SMTP)",
    )
    followup_delay: float = setting(
        "FOLLOWUP_DELAY",
        "120",
        p.duration(0),
        'seconds the site must stay up after an incident before the "we\'re back" mail goes out (`0`: at once)',
    )
    mail_rate: RateLimit = setting(
        "MAIL_RATE",
        "5/second",
        p.sending_rate,
        "the most follow-up messages sent per second, per minute or per hour, across all instances",
    )
    api_token: str | None = secret(
        "API_TOKEN",
        "bearer token for the control API (`/_fallback/api/v1/`), 24 characters at least; without it the API"
        " answers 404",
    )
    webhook_urls: tuple[str, ...] = setting(
        "WEBHOOK_URLS",
        "",
        p.url_list,
        "comma-separated URLs that receive signed JSON events (Standard Webhooks)",
        secret=True,
    )
    webhook_secret: str | None = secret(
        "WEBHOOK_SECRET",
        "the Standard Webhooks signing secret, `whsec_` followed by base64",
        p.webhook_secret,
        shown_default="none (required with webhook URLs)",
    )
    metrics_token: str | None = secret(
        "METRICS_TOKEN",
        "bearer token for `/_fallback/metrics` (Prometheus), 24 characters at least; the API token works too; with"
        " neither, the route answers 404",
    )
    quorum: int = setting(
        "QUORUM",
        "1",
        p.whole(1),
        "how many vantage points (instances on one database, and probe agents) must agree before the state flips",
    )
    admit_rate: float | None = setting(
        "ADMIT_RATE",
        "off",
        p.admission_rate,
        "the most new visitors sent on to the main site while it is up, `N/second` or `N/minute`, across all workers"
        " and instances; the others wait on the page in arrival order and are sent on when their turn comes (see"
        " [Admission](admission.md)); `off` sends everyone at once",
    )
    admit_adapt: bool = setting(
        "ADMIT_ADAPT",
        "true",
        p.boolean,
        "with an admission rate: the rate in force drops while the main site answers slowly or fails and climbs back"
        " towards `FALLBACK_ADMIT_RATE` while it answers fast; after an outage it starts low and climbs (a paced"
        " reopening)",
    )
    access_log: str | None = setting(
        "ACCESS_LOG",
        None,
        p.log_file,
        "an access log in Apache's combined format: `-` for standard output, or a file path; none by default (it"
        " costs the hot path some speed: see Logs)",
    )
    log_format: str = setting(
        "LOG_FORMAT",
        "text",
        p.choice("text", "json"),
        "`json` writes every log line (errors, fallback's own, the access log) as one JSON object, for platforms"
        " that index logs",
    )
    port: int = setting("PORT", "8000", p.whole(1, 65535), "where `fallback serve` listens")
    web_concurrency: int = setting(
        "WEB_CONCURRENCY",
        "2",
        p.whole(1, 64),
        "how many web workers `fallback serve` starts (the platforms' convention; `--workers` wins)",
    )

    def __post_init__(self) -> None:
        """Fill the defaults that follow from the main URL, and check the settings that need one another."""
        host = urlsplit(self.main_url).hostname if self.main_url else None
        if not self.check_urls and self.main_url:
            object.__setattr__(self, "check_urls", (self.main_url,))
        if not self.site_name:
            object.__setattr__(self, "site_name", host or UNNAMED_SITE)
        problems = self.mismatches()
        if problems:
            raise ConfigError.all_of(problems)

    def mismatches(self) -> list[ConfigError]:
        """The settings that another setting makes required or wrong."""
        problems = []
        if self.smtp_url and not self.mail_from:
            problems.append(
                ConfigError(PREFIX + "MAIL_FROM", "a sender for follow-up mail, since FALLBACK_SMTP_URL is set")
            )
        if self.smtp_url and not self.public_url:
            # The unsubscribe link of every follow-up message points there.
            problems.append(
                ConfigError(PREFIX + "PUBLIC_URL", "where visitors reach fallback, since FALLBACK_SMTP_URL is set")
            )
        if self.notify_leads and not self.notify_urls:
            problems.append(
                ConfigError(PREFIX + "NOTIFY_URLS", "where lead digests go, since FALLBACK_NOTIFY_LEADS is set")
            )
        if self.admin_password is not None and len(self.admin_password.strip()) < MIN_PASSWORD_LENGTH:
            problems.append(
                ConfigError(PREFIX + "ADMIN_PASSWORD", f"{MIN_PASSWORD_LENGTH} characters at least", secret=True)
            )
        for field in TOKENS:
            token = getattr(self, field)
            if token is not None and len(token.strip()) < MIN_TOKEN_LENGTH:
                expected = f"a token of {MIN_TOKEN_LENGTH} characters at least; make one with: {TOKEN_RECIPE}"
                problems.append(ConfigError(PREFIX + field.upper(), expected, secret=True))
        if self.webhook_urls and not self.webhook_secret:
            problems.append(
                ConfigError(PREFIX + "WEBHOOK_SECRET", "a signing secret, since FALLBACK_WEBHOOK_URLS is set")
            )
        return problems

    @classmethod
    def declared(cls) -> list[Variable]:
        """Every variable the settings read, in declaration order."""
        return [field.metadata["variable"] for field in dataclasses.fields(cls)]

    @classmethod
    def variables(cls) -> list[str]:
        """The name of every environment variable the settings read."""
        return [variable.name for variable in cls.declared()]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, need_main_url: bool = False) -> Settings:
        """Build settings from `environ` (the process environment by default), with FALLBACK_MAIN_URL set if
        `need_main_url`; one ConfigError names every variable that is missing or wrong."""
        environ = os.environ if environ is None else environ
        values, problems = {}, []
        for field in dataclasses.fields(cls):
            try:
                values[field.name] = field.metadata["variable"].read(environ)
            except ConfigError as error:
                problems.append(error)
                values[field.name] = None  # read as unset, so the checks between settings still run
        named = {error.variable for error in problems}
        if need_main_url and not values["main_url"] and PREFIX + "MAIN_URL" not in named:
            problems.append(missing_main_url())
        try:
            settings = cls(**values)
        except ConfigError as mismatched:
            problems += [error for error in mismatched.parts if error.variable not in named]
            raise ConfigError.all_of(problems) from None
        if problems:
            raise ConfigError.all_of(problems)
        return settings

    def require_main_url(self) -> str:
        """The main URL, or a ConfigError saying it is needed."""
        if not self.main_url:
            raise missing_main_url()
        return self.main_url

    @property
    def https_public_url(self) -> bool:
        """Whether FALLBACK_PUBLIC_URL is https: Secure cookies and HSTS then, whatever the hops."""
        return bool(self.public_url) and urlsplit(self.public_url).scheme == "https"

    @property
    def is_postgres(self) -> bool:
        """Whether the database setting names a PostgreSQL server."""
        return is_postgres_url(self.database)


TABLE_HEADER = "| variable | default | meaning |\n|---|---|---|\n"


def markdown_table() -> str:
    """The docs' settings table (docs/configuration.md), from the declaration."""
    rows = (f"| `{v.name}` | {v.shown_in_docs()} | {v.help} |\n" for v in Settings.declared())
    return TABLE_HEADER + "".join(rows)


def with_table(page: str) -> str:
    """`page` with its settings table (from the header to the first blank line) replaced by a fresh one."""
    start = page.index(TABLE_HEADER)
    end = page.index("\n\n", start)
    return page[:start] + markdown_table() + page[end + 1 :]


if __name__ == "__main__":
    # python -m fallback.core.settings docs/configuration.md: rewrite the table in place; with no argument, print it.
    if len(sys.argv) > 1:
        with open(sys.argv[1], encoding="utf-8") as file:
            updated = with_table(file.read())
        with open(sys.argv[1], "w", encoding="utf-8") as file:
            file.write(updated)
    else:
        sys.stdout.write(markdown_table())
