"""The `fallback` command, run in-process, on both backends."""

import csv
import io
import json
import logging
import os
import stat
from importlib.metadata import version
from urllib.parse import urlsplit

import pytest

from fallback.cli import cli, database_label, ngettext
from fallback.core.settings import Settings
from fallback.serving.server import bind_host
from fallback.storage import NewLead

BACKENDS = ["sqlite", "postgres"]


def test_every_command_has_help_with_an_example(runner):
    for name, command in cli.commands.items():
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example:" in result.output and f"fallback {name}" in result.output, name


def test_mode_down_then_status(runner, storage):
    result = runner.invoke(cli, ["mode", "down", "--for", "2h", "--reason", "TV"])
    assert result.exit_code == 0 and "mode set to down until" in result.output
    flag = storage.flag.read()
    assert (flag.mode, flag.mode_reason) == ("down", "TV")
    status = json.loads(runner.invoke(cli, ["status", "--json"]).output)
    assert (status["state"], status["mode"], status["leads"]) == ("down", "down", 0)
    assert status["mode_until"] is not None
    text = runner.invoke(cli, ["status"]).output
    assert "state:  down" in text and "reason: TV" in text


def test_mode_refuses_a_bad_duration_without_a_traceback(runner, storage):
    result = runner.invoke(cli, ["mode", "down", "--for", "soon"])
    assert result.exit_code == 2
    assert "--for" in result.output and "Traceback" not in result.output
    assert storage.flag.read().mode == "auto"


def test_a_bad_setting_stops_a_command_with_one_line(runner, monkeypatch):
    monkeypatch.setenv("FALLBACK_FALL", "lots")
    result = runner.invoke(cli, ["status"])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: FALLBACK_FALL: expected a whole number ≥ 1, got 'lots'"


def test_serve_needs_the_main_url(runner, monkeypatch):
    monkeypatch.delenv("FALLBACK_MAIN_URL")
    result = runner.invoke(cli, ["serve"])
    assert result.exit_code == 2 and "FALLBACK_MAIN_URL" in result.output


def test_export_writes_csv_to_stdout_or_a_file(runner, storage, tmp_path):
    storage.leads.save(NewLead("a@example.org", name="-1+1"))
    storage.leads.save(NewLead("b@example.org", spam_reason="honeypot"))
    rows = list(csv.DictReader(io.StringIO(runner.invoke(cli, ["export"]).output)))
    assert [(row["email"], row["name"]) for row in rows] == [("a@example.org", "'-1+1")]
    target = tmp_path / "out.csv"
    assert runner.invoke(cli, ["export", "--since", "2000-01-01", "-o", str(target)]).exit_code == 0
    assert "a@example.org" in target.read_text()


def test_export_to_a_file_makes_it_readable_by_its_owner_only(runner, storage, tmp_path):
    storage.leads.save(NewLead("paul@example.org"))
    previous = os.umask(0o022)
    try:
        fresh, existing = tmp_path / "fresh.csv", tmp_path / "existing.csv"
        existing.write_text("old")
        existing.chmod(0o644)
        for target in (fresh, existing):
            assert runner.invoke(cli, ["export", "-o", str(target)]).exit_code == 0
            assert stat.S_IMODE(target.stat().st_mode) == 0o600 and "paul@example.org" in target.read_text()
    finally:
        os.umask(previous)


def test_export_refuses_a_bad_bound(runner, storage):
    result = runner.invoke(cli, ["export", "--since", "last week"])
    assert result.exit_code == 2 and "--since: expected an ISO date" in result.output


def test_forget_says_how_many_and_succeeds_when_none(runner, storage):
    storage.leads.save(NewLead("Paul@Example.org"))
    result = runner.invoke(cli, ["forget", "paul@EXAMPLE.org"])
    assert result.exit_code == 0 and "erased 1 lead of" in result.output
    assert "not erased" in result.output and "logs kept by the platform" in result.output
    result = runner.invoke(cli, ["forget", "paul@example.org"])
    assert result.exit_code == 0 and "erased 0 leads" in result.output


def test_purge_erases_old_leads(runner, storage):
    storage.leads.save(NewLead("now@example.org"))
    result = runner.invoke(cli, ["purge", "--older-than", "30"])
    assert result.exit_code == 0 and "erased 0 leads" in result.output
    assert runner.invoke(cli, ["purge", "--older-than", "0"]).output.startswith("erased 1 lead ")
    assert runner.invoke(cli, ["purge"]).exit_code == 2


def test_check_needs_a_url(runner, monkeypatch):
    monkeypatch.delenv("FALLBACK_MAIN_URL")
    assert runner.invoke(cli, ["check"]).exit_code == 2


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["status", "--json"],
        ["mode", "down"],
        ["export"],
        ["forget", "a@example.org"],
        ["purge", "--older-than", "1"],
    ],
)
def test_a_command_run_from_another_folder_refuses_the_missing_database_and_creates_nothing(
    runner, monkeypatch, tmp_path, command
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("FALLBACK_DATABASE")
    result = runner.invoke(cli, command)
    assert result.exit_code == 2, result.output
    assert f"no database at {elsewhere / 'fallback.db'}" in result.output
    assert "Traceback" not in result.output
    assert list(elsewhere.iterdir()) == []


def test_a_command_refuses_a_database_path_that_does_not_exist(runner, monkeypatch, tmp_path):
    missing = tmp_path / "typo.db"
    monkeypatch.setenv("FALLBACK_DATABASE", str(missing))
    result = runner.invoke(cli, ["mode", "down"])
    assert result.exit_code == 2 and str(missing) in result.output
    assert not missing.exists()


def test_status_says_which_database_it_read_without_a_password(runner, storage, env):
    # On PostgreSQL (see BACKENDS) the URL carries a password.
    label, password = database_label(Settings.from_env(env)), urlsplit(env["FALLBACK_DATABASE"]).password
    text = runner.invoke(cli, ["status"]).output
    assert f"database: {label}" in text and (password is None or password not in text)
    assert json.loads(runner.invoke(cli, ["status", "--json"]).output)["database"] == label
    assert f"database: {label}" in runner.invoke(cli, ["mode", "auto"]).output


def test_a_postgres_database_is_named_without_its_password():
    settings = Settings.from_env({"FALLBACK_DATABASE": "postgresql://shop:hunter2@db.example.com/fallback"})
    assert database_label(settings) == "postgresql://shop:***@db.example.com/fallback"


def test_status_counts_an_incidents_leads_in_good_english_and_shows_both_times(runner, storage):
    storage.flag.flip("unknown", "down", "HTTP 503")
    storage.leads.save(NewLead("a@example.org"))
    storage.flag.set_mode("down", reason="TV")
    text = runner.invoke(cli, ["status"]).output
    assert "1 lead so far" in text
    started = storage.flag.incidents(1)[0].started_at[:19]
    since = storage.flag.read().mode_changed_at.isoformat()[:19]
    assert f"incident: since {started}Z" in text and f"since:  {since}" in text and "(when the mode was set)" in text


def test_the_cli_speaks_the_shells_language_for_plurals(monkeypatch):
    from fallback.cli import common

    common._catalog.cache_clear()
    monkeypatch.setenv("LANGUAGE", "fr")
    try:
        assert ngettext("%(num)d lead so far", "%(num)d leads so far", 2) == "2 contacts recueillis jusqu’ici"
    finally:
        common._catalog.cache_clear()


@pytest.mark.parametrize(("duration", "seconds"), [("90", 90), ("2.5m", 150), ("1h", 3600)])
def test_mode_for_takes_the_same_durations_as_the_settings(runner, storage, duration, seconds):
    assert runner.invoke(cli, ["mode", "down", "--for", duration]).exit_code == 0
    flag = storage.flag.read()
    assert abs((flag.mode_until - flag.mode_changed_at).total_seconds() - seconds) < 1


def test_for_only_applies_to_a_forced_mode(runner, storage):
    result = runner.invoke(cli, ["mode", "auto", "--for", "1h"])
    assert result.exit_code == 2 and "--for only applies to up or down" in result.output


@pytest.mark.parametrize(
    ("option", "environ", "expected"),
    [
        (None, {}, "127.0.0.1"),
        (None, {"PORT": "8080"}, "0.0.0.0"),
        (None, {"PORT": " "}, "127.0.0.1"),
        ("::1", {"PORT": "8080"}, "::1"),
        ("0.0.0.0", {}, "0.0.0.0"),
    ],
)
def test_serve_listens_on_loopback_unless_the_platform_set_port_or_host_says_otherwise(option, environ, expected):
    assert bind_host(option, environ) == expected


def test_the_version_is_the_packages(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"fallback, version {version('fallback')}"


def test_a_mode_set_from_the_command_line_is_logged_with_who_what_until_and_why(runner, storage, caplog, monkeypatch):
    monkeypatch.setenv("USER", "alice")
    caplog.set_level(logging.INFO, "fallback.mode")
    runner.invoke(cli, ["mode", "up", "--reason", "false alarm\nmode set to auto"])
    runner.invoke(cli, ["mode", "auto"])
    assert [record.getMessage() for record in caplog.records] == [
        "mode set to up by cli (alice), until changed, reason: 'false alarm\\nmode set to auto'",
        "mode set to auto by cli (alice), until changed, reason: none given",
    ]
