"""Settings: every setting of SPEC section 2, read once from the environment into one typed, checked object.

Each field declares its variable (fallback.core.variables: default, parser, help) and has its parser's type;
fallback.core.settings_table writes the docs' settings table (docs/configuration.md) from these declarations.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from fallback.core import parsers as p
from fallback.core.parsers import LOGO_TYPES, MAX_LOGO_BYTES, RateLimit, is_postgres_url
from fallback.core.variables import PREFIX, ConfigError, Variable, optional, secret, setting, unparsed, variable_name

__all__ = ["LOGO_TYPES", "MAX_LOGO_BYTES", "ConfigError", "RateLimit", "Settings", "Variable"]

# The page's name for the site when neither FALLBACK_SITE_NAME nor the main URL gives one.
UNNAMED_SITE = "our site"
# Log-in failures are limited (fallback.team.logins); the password's length is what makes that limit enough.
MIN_PASSWORD_LENGTH = 12
# A lead digest more often than once a minute would be a message per lead; one a day is the longest that reads as news.
LEAD_DIGEST_SHORTEST, LEAD_DIGEST_LONGEST = 60, 86400
# Wrong tokens are limited too, but a token is a machine's: 24 random characters cannot be guessed at all.
MIN_TOKEN_LENGTH = 24
TOKEN_RECIPE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
TOKENS = ("export_token", "api_token", "metrics_token")


def missing_main_url() -> ConfigError:
    """FALLBACK_MAIN_URL is needed here and not set."""
    return ConfigError(PREFIX + "MAIN_URL", "the main site's base URL, such as https://www.example.com")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting of SPEC section 2, parsed and checked; built by `from_env`, never at import time."""

    main_url: str | None = optional(
        p.url,
        "base URL of the main site; redirect target while it is up",
        shown_default="none (required to serve)",
    )
    check_urls: tuple[str, ...] = setting(
        "", p.url_list, "comma-separated URLs probed on the main site", shown_default="the main URL"
    )
    control_url: str | None = optional(
        p.url,
        "a URL that should always answer; if it fails too, the checker doubts its own network and does not flip",
    )
    check_interval: float = setting("5", p.duration(0.1), "seconds between probes while healthy")
    check_timeout: float = setting("3", p.duration(0.1), "seconds before a probe counts as failed")
    fall: int = setting("3", p.whole(1), "consecutive failed probes that declare the site down")
    rise: int = setting("2", p.whole(1), "consecutive good probes that declare it up again")
    max_latency: float = setting("2.0", p.duration(0.01), 'a slower answer counts as a failed probe ("slow is down")')
    expect_text: str | None = optional(p.text, "text the probed page must contain")
    database: str = unparsed(
        "fallback.db",
        p.database,
        "a SQLite file path (one machine), or a `postgresql://` URL for several instances sharing one database",
        shown_default="`fallback.db` in the working directory",
    )
    secret_key: str | None = secret(
        "signs form tokens and admin sessions; without it, one is generated, stored in the database, and the log"
        " says so",
    )
    admin_password: str | None = secret(
        "admin password, 12 characters at least; without it the admin area answers 404 and the log says why",
    )
    export_token: str | None = secret(
        "bearer token for scripted CSV export, 24 characters at least; without it only a logged-in admin can export",
    )
    form_min_seconds: float = setting(
        "3",
        p.duration(0),
        "a form sent sooner after the page was rendered is treated as a bot; `0` turns the time trap off. A rendered"
        " form stays valid for 24 hours",
    )
    trusted_proxies: int = setting("0", p.whole(0), "how many proxy hops' `X-Forwarded-*` headers to trust")
    rate_limit: RateLimit | None = setting(
        "60/minute", p.rate, "`N/second`, `N/minute` or `N/hour` per client address; `0` turns it off"
    )
    require_consent: bool = setting("true", p.boolean, "whether the consent box must be ticked")
    contact_email: str | None = optional(
        p.email_address, "an address shown on the page for people who would rather write"
    )
    notify_urls: tuple[str, ...] = setting(
        "",
        p.apprise_urls,
        "comma-separated Apprise URLs (`slack://...`, `mailto://...`, `json://host/path`, ...) where each flip and"
        " forced mode is announced once; an invalid URL stops start-up",
        secret=True,
    )
    notify_leads: int | None = setting(
        "off",
        p.period_or_off(LEAD_DIGEST_SHORTEST, LEAD_DIGEST_LONGEST),
        "`off`, or a period from `1m` to `24h` (`5m`, `1h`): at most once per period, tell the FALLBACK_NOTIFY_URLS"
        " how many new leads came in, with the dashboard's address (FALLBACK_PUBLIC_URL) and never a visitor's"
        " address or words; nothing is sent for a period without a new lead",
    )
    # Never empty once built: without FALLBACK_SITE_NAME, the main URL's host or UNNAMED_SITE (__post_init__).
    site_name: str = setting("", p.text, "the name shown on the page", shown_default="the main URL's host")
    brand_color: str = setting(
        "#0b57d0",
        p.color,
        "the brand colour (`#rrggbb`) of buttons and links; text on it is chosen to keep WCAG AA contrast",
    )
    logo: str | None = optional(
        p.logo,
        "an `.svg`, `.png`, `.jpg` or `.webp` file (64 KB at most) shown instead of the site name, served by"
        " fallback itself",
    )
    headline: str | None = optional(p.text, "the page's headline", shown_default='"We\'ll be right back" (translated)')
    message: str | None = optional(
        p.text, "the sentence under the headline", shown_default="a short apology (translated)"
    )
    templates: str | None = optional(
        p.folder, "a folder whose templates override the shipped ones (rebranding without forking)"
    )
    public_url: str | None = optional(
        p.url,
        "the URL where visitors reach fallback (`https://sorry.example.com`); used for links in mails, the `Secure`"
        " flag of cookies and HSTS when it is `https`, and by `fallback drill`",
    )
    smtp_url: str | None = optional(
        p.smtp_url,
        "where follow-up mail is sent: `smtp://user:password@host:587` (STARTTLS when the server offers it;"
        " credentials are never sent unencrypted) or `smtps://...:465`; without it, no follow-up is offered",
        secret=True,
    )
    mail_from: str | None = optional(
        p.mailbox,
        "the sender of follow-up mail, `Name <address>` or an address",
        shown_default="none (required with SMTP)",
    )
    followup_delay: float = setting(
        "120",
        p.duration(0),
        'seconds the site must stay up after an incident before the "we\'re back" mail goes out (`0`: at once)',
    )
    mail_rate: RateLimit = setting(
        "5/second",
        p.sending_rate,
        "the most follow-up messages sent per second, per minute or per hour, across all instances",
    )
    api_token: str | None = secret(
        "bearer token for the control API (`/_fallback/api/v1/`), 24 characters at least; without it the API"
        " answers 404",
    )
    webhook_urls: tuple[str, ...] = setting(
        "",
        p.url_list,
        "comma-separated URLs that receive signed JSON events (Standard Webhooks)",
        secret=True,
    )
    webhook_secret: str | None = secret(
        "the Standard Webhooks signing secret, `whsec_` followed by base64",
        p.webhook_secret,
        shown_default="none (required with webhook URLs)",
    )
    metrics_token: str | None = secret(
        "bearer token for `/_fallback/metrics` (Prometheus), 24 characters at least; the API token works too; with"
        " neither, the route answers 404",
    )
    quorum: int = setting(
        "1",
        p.whole(1),
        "how many vantage points (instances on one database, and probe agents) must agree before the state flips",
    )
    admit_rate: float | None = setting(
        "off",
        p.admission_rate,
        "the most new visitors sent on to the main site while it is up, `N/second` or `N/minute`, across all workers"
        " and instances; the others wait on the page in arrival order and are sent on when their turn comes (see"
        " [Admission](admission.md)); `off` sends everyone at once",
    )
    admit_adapt: bool = setting(
        "true",
        p.boolean,
        "with an admission rate: the rate in force drops while the main site answers slowly or fails and climbs back"
        " towards `FALLBACK_ADMIT_RATE` while it answers fast; after an outage it starts low and climbs (a paced"
        " reopening)",
    )
    access_log: str | None = optional(
        p.log_file,
        "an access log in Apache's combined format: `-` for standard output, or a file path; none by default (it"
        " costs the hot path some speed: see Logs)",
    )
    log_format: str = setting(
        "text",
        p.choice("text", "json"),
        "`json` writes every log line (errors, fallback's own, the access log) as one JSON object, for platforms"
        " that index logs",
    )
    port: int = setting("8000", p.whole(1, 65535), "where `fallback serve` listens")
    web_concurrency: int = setting(
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
                problems.append(ConfigError(variable_name(field), expected, secret=True))
        if self.webhook_urls and not self.webhook_secret:
            problems.append(
                ConfigError(PREFIX + "WEBHOOK_SECRET", "a signing secret, since FALLBACK_WEBHOOK_URLS is set")
            )
        return problems

    @classmethod
    def declared(cls) -> list[Variable[Any]]:
        """Every variable the settings read, in declaration order, each named after its field."""
        return [field.metadata["variable"].named(field.name) for field in dataclasses.fields(cls)]

    @classmethod
    def variables(cls) -> list[str]:
        """The name of every environment variable the settings read."""
        return [variable.name for variable in cls.declared()]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, need_main_url: bool = False) -> Settings:
        """Build settings from `environ` (the process environment by default), with FALLBACK_MAIN_URL set if
        `need_main_url`; one ConfigError names every variable that is missing or wrong."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[ConfigError] = []
        for field, variable in zip(dataclasses.fields(cls), cls.declared(), strict=True):
            try:
                values[field.name] = variable.read(environ)
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
