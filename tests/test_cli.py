"""The `fallback` command, run in-process."""

import csv
import io
import json

import pytest

from fallback.cli import cli
from fallback.storage import NewLead, open_storage


@pytest.fixture
def db(runner, env):
    return open_storage(env["FALLBACK_DATABASE"])


def test_every_command_has_help_with_an_example(runner):
    for name, command in cli.commands.items():
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example:" in result.output and f"fallback {name}" in result.output, name


def test_mode_down_then_status(runner, db):
    result = runner.invoke(cli, ["mode", "down", "--for", "2h", "--reason", "TV"])
    assert result.exit_code == 0 and "mode set to down until" in result.output
    flag = db.flag.read()
    assert (flag.mode, flag.mode_reason) == ("down", "TV")
    status = json.loads(runner.invoke(cli, ["status", "--json"]).output)
    assert (status["state"], status["mode"], status["leads"]) == ("down", "down", 0)
    assert status["mode_until"] is not None
    text = runner.invoke(cli, ["status"]).output
    assert "state:  down" in text and "reason: TV" in text


def test_mode_refuses_a_bad_duration_without_a_traceback(runner, db):
    result = runner.invoke(cli, ["mode", "down", "--for", "soon"])
    assert result.exit_code == 2
    assert "--for" in result.output and "Traceback" not in result.output
    assert db.flag.read().mode == "auto"


def test_a_bad_setting_stops_a_command_with_one_line(runner, monkeypatch):
    monkeypatch.setenv("FALLBACK_FALL", "lots")
    result = runner.invoke(cli, ["status"])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: FALLBACK_FALL: expected a whole number ≥ 1, got 'lots'"


def test_serve_needs_the_main_url(runner, monkeypatch):
    monkeypatch.delenv("FALLBACK_MAIN_URL")
    result = runner.invoke(cli, ["serve"])
    assert result.exit_code == 2 and "FALLBACK_MAIN_URL" in result.output


def test_export_writes_csv_to_stdout_or_a_file(runner, db, tmp_path):
    db.leads.save(NewLead("a@example.org", name="-1+1"))
    db.leads.save(NewLead("b@example.org", spam_reason="honeypot"))
    rows = list(csv.DictReader(io.StringIO(runner.invoke(cli, ["export"]).output)))
    assert [(row["email"], row["name"]) for row in rows] == [("a@example.org", "'-1+1")]
    target = tmp_path / "out.csv"
    assert runner.invoke(cli, ["export", "--since", "2000-01-01", "-o", str(target)]).exit_code == 0
    assert "a@example.org" in target.read_text()


def test_export_refuses_a_bad_bound(runner, db):
    result = runner.invoke(cli, ["export", "--since", "last week"])
    assert result.exit_code == 2 and "--since: expected an ISO date" in result.output


def test_forget_says_how_many_and_succeeds_when_none(runner, db):
    db.leads.save(NewLead("Paul@Example.org"))
    result = runner.invoke(cli, ["forget", "paul@EXAMPLE.org"])
    assert result.exit_code == 0 and "erased 1 lead of" in result.output
    result = runner.invoke(cli, ["forget", "paul@example.org"])
    assert result.exit_code == 0 and "erased 0 leads" in result.output


def test_purge_erases_old_leads(runner, db):
    db.leads.save(NewLead("now@example.org"))
    result = runner.invoke(cli, ["purge", "--older-than", "30"])
    assert result.exit_code == 0 and "erased 0 leads" in result.output
    assert runner.invoke(cli, ["purge", "--older-than", "0"]).output.startswith("erased 1 lead ")
    assert runner.invoke(cli, ["purge"]).exit_code == 2


def test_check_needs_a_url(runner, monkeypatch):
    monkeypatch.delenv("FALLBACK_MAIN_URL")
    assert runner.invoke(cli, ["check"]).exit_code == 2
