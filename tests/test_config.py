"""Settings are parsed strictly, with one-line errors naming the variable."""

import pytest

from fallback.config import ConfigError, RateLimit, Settings


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
    settings = Settings.from_env({
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
    })
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


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("FALLBACK_MAIN_URL", "www.example.com", "an http:// or https:// URL"),
        ("FALLBACK_CHECK_URLS", "https://ok.example, ftp://x", "an http:// or https:// URL"),
        ("FALLBACK_CHECK_INTERVAL", "soon", "a number of seconds"),
        ("FALLBACK_CHECK_TIMEOUT", "-1", "a number of seconds"),
        ("FALLBACK_FALL", "0", "a whole number ≥ 1"),
        ("FALLBACK_RISE", "2.5", "a whole number ≥ 1"),
        ("FALLBACK_MAX_LATENCY", "nan", "a number of seconds"),
        ("FALLBACK_FORM_MIN_SECONDS", "inf", "a number of seconds"),
        ("FALLBACK_TRUSTED_PROXIES", "-1", "a whole number ≥ 0"),
        ("FALLBACK_RATE_LIMIT", "60/fortnight", "N/second, N/minute or N/hour"),
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


def test_the_main_url_is_required_only_to_serve():
    settings = Settings.from_env({})
    with pytest.raises(ConfigError, match="FALLBACK_MAIN_URL"):
        settings.require_main_url()


def test_empty_values_count_as_unset():
    assert Settings.from_env({"FALLBACK_FALL": "", "FALLBACK_SECRET_KEY": " "}).fall == 3


def test_nothing_is_read_from_the_environment_at_import_time():
    import subprocess
    import sys

    modules = "fallback.app, fallback.cli, fallback.checker, fallback.web, fallback.admin, fallback.server"
    result = subprocess.run([sys.executable, "-c", f"import {modules}"], capture_output=True, text=True, timeout=60,
                            env={"FALLBACK_FALL": "not a number", "FALLBACK_MAIN_URL": "nope", "PATH": ""})
    assert result.returncode == 0, result.stderr
