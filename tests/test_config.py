"""Settings are parsed strictly, with one-line errors naming the variable."""

import pytest

from fallback.core.settings import ConfigError, RateLimit, Settings
from fallback.core.variables import variable_name


def test_it_has_the_documented_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"FALLBACK_MAIN_URL": "https://shop.example.com/"})
    assert settings.check_urls == ("https://shop.example.com/",)
    assert (settings.check_interval, settings.check_timeout, settings.fall, settings.rise) == (5.0, 3.0, 3, 2)
    assert settings.max_latency == 2.0
    assert settings.database == str(tmp_path / "fallback.db")
    assert settings.form_min_seconds == 3.0
    assert settings.rate_limit == RateLimit(60, 60)
    assert settings.require_consent is True
    assert settings.site_name == "shop.example.com"
    assert settings.port == 8000


def test_it_reads_every_kind_of_value(tmp_path):
    settings = Settings.from_env(
        {
            "FALLBACK_MAIN_URL": "http://127.0.0.1:9000",
            "FALLBACK_CHECK_URLS": "http://127.0.0.1:9000/a, http://127.0.0.1:9000/b",
            "FALLBACK_CHECK_INTERVAL": "1.5",
            "FALLBACK_FALL": "2",
            "FALLBACK_RATE_LIMIT": "5/second",
            "FALLBACK_REQUIRE_CONSENT": "false",
            "FALLBACK_CONTACT_EMAIL": "Hello@Example.com",
            "FALLBACK_SITE_NAME": "Acme",
            "FALLBACK_TEMPLATES": str(tmp_path),
            "PORT": "5000",
        }
    )
    assert settings.check_urls == ("http://127.0.0.1:9000/a", "http://127.0.0.1:9000/b")
    assert settings.check_interval == 1.5 and settings.fall == 2
    assert settings.rate_limit == RateLimit(5, 1)
    assert settings.require_consent is False
    assert settings.contact_email == "Hello@example.com"
    assert settings.site_name == "Acme"
    assert settings.templates == str(tmp_path)
    assert settings.port == 5000


def test_a_zero_rate_limit_turns_it_off():
    assert Settings.from_env({"FALLBACK_RATE_LIMIT": "0"}).rate_limit is None


def test_admission_is_off_by_default_and_adapts_once_a_rate_is_set():
    settings = Settings.from_env({})
    assert settings.admit_rate is None
    assert settings.admit_adapt is True


@pytest.mark.parametrize(("value", "per_second"), [("off", None), ("20/second", 20.0), ("90/minute", 1.5)])
def test_the_admission_rate_is_read_as_visitors_per_second(value, per_second):
    assert Settings.from_env({"FALLBACK_ADMIT_RATE": value}).admit_rate == per_second


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("FALLBACK_MAIN_URL", "www.example.com", "an http:// or https:// URL"),
        ("FALLBACK_CHECK_URLS", "https://ok.example, ftp://x", "an http:// or https:// URL"),
        ("FALLBACK_CHECK_INTERVAL", "soon", "a duration of at least 0.1 s, such as 5, 5s, 2m"),
        ("FALLBACK_CHECK_TIMEOUT", "-1", "a duration"),
        ("FALLBACK_FALL", "0", "a whole number ≥ 1"),
        ("FALLBACK_RISE", "2.5", "a whole number ≥ 1"),
        ("FALLBACK_MAX_LATENCY", "nan", "a duration"),
        ("FALLBACK_FORM_MIN_SECONDS", "inf", "a duration"),
        ("FALLBACK_FOLLOWUP_DELAY", "2 days", "a duration"),
        ("FALLBACK_PUBLIC_URL", "sorry.example.com", "an http:// or https:// URL"),
        ("FALLBACK_SMTP_URL", "http://mail.example.com", "an smtp:// or smtps:// URL"),
        ("FALLBACK_MAIL_FROM", "nobody", "a sender such as"),
        ("FALLBACK_MAIL_RATE", "0", "N/second, N/minute or N/hour (N ≥ 1)"),
        ("FALLBACK_WEBHOOK_URLS", "ftp://hooks.example.com", "an http:// or https:// URL"),
        ("FALLBACK_QUORUM", "0", "a whole number ≥ 1"),
        ("FALLBACK_TRUSTED_PROXIES", "-1", "a whole number ≥ 0"),
        ("FALLBACK_RATE_LIMIT", "60/fortnight", "N/second, N/minute or N/hour"),
        ("FALLBACK_ADMIT_RATE", "50/hour", "off, N/second or N/minute (N ≥ 1)"),
        ("FALLBACK_ADMIT_RATE", "0/second", "off, N/second or N/minute"),
        ("FALLBACK_ADMIT_ADAPT", "perhaps", "true or false"),
        ("FALLBACK_REQUIRE_CONSENT", "maybe", "true or false"),
        ("FALLBACK_CONTACT_EMAIL", "not an address", "an e-mail address"),
        ("FALLBACK_TEMPLATES", "/no/such/folder", "an existing folder"),
        ("FALLBACK_DATABASE", "mysql://db/x", "a SQLite file path or a postgresql:// URL"),
        ("PORT", "70000", "a whole number from 1 to 65535"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_it_expected(variable, value, expected):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: value})
    message = str(raised.value)
    assert message.startswith(f"{variable}: expected ")
    assert expected in message
    assert "\n" not in message


def test_an_error_never_echoes_a_database_url_with_its_password():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"FALLBACK_DATABASE": "mysql://user:hunter2@db/x"})
    assert "hunter2" not in str(raised.value)


def test_the_new_settings_have_the_specs_defaults():
    settings = Settings.from_env({})
    assert (settings.public_url, settings.smtp_url, settings.mail_from) == (None, None, None)
    assert settings.followup_delay == 120.0 and settings.mail_rate == RateLimit(5, 1)
    assert (settings.api_token, settings.webhook_urls, settings.webhook_secret) == (None, (), None)
    assert (settings.metrics_token, settings.quorum) == (None, 1)


def test_it_reads_the_mail_webhook_and_quorum_settings():
    settings = Settings.from_env(
        {
            "FALLBACK_PUBLIC_URL": "https://sorry.example.com",
            "FALLBACK_SMTP_URL": "smtps://shop:pw@mail.example.com:465",
            "FALLBACK_MAIL_FROM": "Shop <news@example.com>",
            "FALLBACK_FOLLOWUP_DELAY": "2m",
            "FALLBACK_MAIL_RATE": "100/minute",
            "FALLBACK_WEBHOOK_URLS": "https://a.example/hook, https://b.example/hook",
            "FALLBACK_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "FALLBACK_QUORUM": "2",
        }
    )
    assert settings.mail_from == "Shop <news@example.com>" and settings.followup_delay == 120.0
    assert settings.mail_rate == RateLimit(100, 60) and settings.quorum == 2
    assert settings.webhook_urls == ("https://a.example/hook", "https://b.example/hook")


@pytest.mark.parametrize(("value", "seconds"), [("5", 5.0), ("5s", 5.0), ("0.5m", 30.0), ("2.5", 2.5)])
def test_every_duration_setting_takes_the_same_forms(value, seconds):
    env = {
        name: value
        for name in (
            "FALLBACK_CHECK_INTERVAL",
            "FALLBACK_CHECK_TIMEOUT",
            "FALLBACK_MAX_LATENCY",
            "FALLBACK_FORM_MIN_SECONDS",
            "FALLBACK_FOLLOWUP_DELAY",
        )
    }
    settings = Settings.from_env(env)
    assert {
        settings.check_interval,
        settings.check_timeout,
        settings.max_latency,
        settings.form_min_seconds,
        settings.followup_delay,
    } == {seconds}


def test_minutes_and_hours_are_read_as_seconds():
    settings = Settings.from_env({"FALLBACK_CHECK_INTERVAL": "2m", "FALLBACK_FOLLOWUP_DELAY": "1h"})
    assert (settings.check_interval, settings.followup_delay) == (120.0, 3600.0)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"FALLBACK_SMTP_URL": "smtp://mail.example.com"}, "FALLBACK_MAIL_FROM"),
        ({"FALLBACK_SMTP_URL": "smtp://mail.example", "FALLBACK_MAIL_FROM": "a@example.com"}, "FALLBACK_PUBLIC_URL"),
        ({"FALLBACK_WEBHOOK_URLS": "https://hooks.example.com"}, "FALLBACK_WEBHOOK_SECRET"),
    ],
)
def test_a_setting_that_needs_another_names_the_missing_one(env, variable):
    with pytest.raises(ConfigError, match=f"(^|\n  ){variable}: expected "):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FALLBACK_SMTP_URL", "ftp://user:hunter2@mail.example.com"),
        ("FALLBACK_WEBHOOK_SECRET", "whsec_hunter2!"),
        ("FALLBACK_WEBHOOK_SECRET", "hunter2"),
        ("FALLBACK_MAIN_URL", "ftp://user:hunter2@www.example.com"),
    ],
)
def test_an_error_never_echoes_a_password_or_a_secret(variable, value):
    with pytest.raises(ConfigError, match=f"^{variable}: expected ") as raised:
        Settings.from_env({variable: value})
    assert "hunter2" not in str(raised.value)


def test_the_defaults_of_settings_built_in_python_are_the_declared_ones():
    built, declared = Settings(), Settings.from_env({})
    for field in (
        "check_interval",
        "fall",
        "rate_limit",
        "require_consent",
        "brand_color",
        "mail_rate",
        "port",
        "site_name",
        "check_urls",
    ):
        assert getattr(built, field) == getattr(declared, field), field
    assert built.database == "fallback.db" and declared.database.endswith("/fallback.db")


def test_the_main_url_is_required_only_to_serve():
    settings = Settings.from_env({})
    with pytest.raises(ConfigError, match="FALLBACK_MAIN_URL"):
        settings.require_main_url()


def test_empty_values_count_as_unset():
    assert Settings.from_env({"FALLBACK_FALL": "", "FALLBACK_SECRET_KEY": " "}).fall == 3


def test_nothing_is_read_from_the_environment_at_import_time():
    import subprocess
    import sys

    modules = (
        "fallback.serving.app, fallback.cli, fallback.checking.checker, fallback.visitor.pages, fallback.team.admin, "
        "fallback.serving.server"
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import {modules}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"FALLBACK_FALL": "not a number", "FALLBACK_MAIN_URL": "nope", "PATH": ""},
    )
    assert result.returncode == 0, result.stderr


def test_the_access_log_is_off_by_default_and_on_with_a_dash_or_a_file(tmp_path):
    assert Settings.from_env({}).access_log is None
    assert Settings.from_env({"FALLBACK_ACCESS_LOG": "-"}).access_log == "-"
    assert Settings.from_env({"FALLBACK_ACCESS_LOG": "true"}).access_log == "-"
    assert Settings.from_env({"FALLBACK_ACCESS_LOG": str(tmp_path / "a.log")}).access_log == str(tmp_path / "a.log")
    with pytest.raises(ConfigError, match="FALLBACK_ACCESS_LOG"):
        Settings.from_env({"FALLBACK_ACCESS_LOG": str(tmp_path / "missing" / "a.log")})


def test_the_log_format_is_text_or_json():
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"FALLBACK_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="FALLBACK_LOG_FORMAT: expected text or json"):
        Settings.from_env({"FALLBACK_LOG_FORMAT": "xml"})


def test_a_variable_is_named_after_its_settings_field():
    assert variable_name("check_urls") == "FALLBACK_CHECK_URLS"
    assert variable_name("web_concurrency") == "WEB_CONCURRENCY"  # the platforms' own, without the prefix
    assert Settings.variables()[:2] == ["FALLBACK_MAIN_URL", "FALLBACK_CHECK_URLS"]
