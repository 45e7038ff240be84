"""Settings from a file: every command first reads `.env` in the working directory, or the file `--env-file`
names; variables already in the environment win; one message names every missing or wrong setting."""

from __future__ import annotations

import os
import subprocess

import pytest
from click.testing import CliRunner
from procs import fallback_command
from standin import StandIn

from fallback.cli import cli
from fallback.core.settings import ConfigError, Settings

BACKENDS = ["sqlite"]


@pytest.fixture
def shell(tmp_path, monkeypatch):
    """A CLI runner in an empty folder, with no FALLBACK_* variable set; the environment is restored after."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("FALLBACK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield CliRunner()
    os.environ.clear()
    os.environ.update(saved)


def served_database(tmp_path, name: str = "served.db") -> str:
    """A database `fallback serve` would have made, forced down, so `status` has something to say."""
    from fallback.storage import open_storage

    path = str(tmp_path / name)
    storage = open_storage(path)
    storage.flag.set_mode("down", reason="env file test", by="test")
    storage.close()
    return path


def test_a_command_reads_dotenv_in_the_working_directory(shell, tmp_path):
    database = served_database(tmp_path)
    (tmp_path / ".env").write_text(f"# the server's settings\nFALLBACK_DATABASE={database}\n")
    result = shell.invoke(cli, ["status"])
    assert result.exit_code == 0, result.output
    assert "down" in result.output and database in result.output


def test_variables_already_in_the_environment_win_over_the_file(shell, tmp_path, monkeypatch):
    database = served_database(tmp_path)
    (tmp_path / ".env").write_text("FALLBACK_DATABASE=elsewhere.db\n")
    monkeypatch.setenv("FALLBACK_DATABASE", database)
    result = shell.invoke(cli, ["status"])
    assert result.exit_code == 0, result.output
    assert database in result.output and "elsewhere.db" not in result.output


def test_env_file_names_another_file_and_dotenv_is_then_left_alone(shell, tmp_path):
    database = served_database(tmp_path)
    (tmp_path / ".env").write_text("FALLBACK_CHECK_INTERVAL=not-a-duration\n")
    (tmp_path / "production.env").write_text(f'export FALLBACK_DATABASE="{database}"\n')
    result = shell.invoke(cli, ["--env-file", "production.env", "status"])
    assert result.exit_code == 0, result.output
    assert database in result.output


def test_a_missing_env_file_is_a_usage_error_naming_it(shell):
    result = shell.invoke(cli, ["--env-file", "missing.env", "status"])
    assert result.exit_code == 2
    assert "missing.env" in result.output and "Traceback" not in result.output


def test_one_message_names_every_missing_or_wrong_setting(shell, tmp_path):
    (tmp_path / ".env").write_text(
        "FALLBACK_CHECK_INTERVAL=soon\nFALLBACK_QUORUM=0\nFALLBACK_SMTP_URL=smtp://127.0.0.1:25\n"
    )
    result = shell.invoke(cli, ["serve"])
    assert result.exit_code == 2
    for variable in ("CHECK_INTERVAL", "QUORUM", "MAIN_URL", "MAIL_FROM", "PUBLIC_URL"):
        assert f"FALLBACK_{variable}: expected" in result.output, variable
    assert "5 settings are missing or wrong" in result.output


def test_settings_name_every_problem_at_once_and_one_problem_as_before():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"FALLBACK_FALL": "x", "FALLBACK_RISE": "y", "FALLBACK_WEBHOOK_URLS": "https://h.example"})
    assert [part.variable for part in raised.value.parts] == [
        "FALLBACK_FALL",
        "FALLBACK_RISE",
        "FALLBACK_WEBHOOK_SECRET",
    ]
    with pytest.raises(ConfigError, match="^FALLBACK_FALL: expected "):
        Settings.from_env({"FALLBACK_FALL": "x"})
    with pytest.raises(ConfigError, match="^FALLBACK_MAIN_URL: expected "):
        Settings.from_env({}, need_main_url=True)


def test_a_real_process_reads_dotenv_and_env_file(tmp_path):
    environ = {name: value for name, value in os.environ.items() if not name.startswith("FALLBACK_")}
    with StandIn() as site:
        (tmp_path / ".env").write_text(f"FALLBACK_MAIN_URL={site.url}\n")
        (tmp_path / "other.env").write_text("FALLBACK_MAIN_URL=http://127.0.0.1:9/\nFALLBACK_CHECK_TIMEOUT=1\n")
        from_dotenv = subprocess.run(
            fallback_command() + ["check"], env=environ, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        from_other = subprocess.run(
            fallback_command() + ["--env-file", "other.env", "check"],
            env=environ,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert from_dotenv.returncode == 0 and f"up: {site.url}" in from_dotenv.stdout, from_dotenv.stderr
    assert from_other.returncode == 1 and "down: http://127.0.0.1:9/" in from_other.stdout, from_other.stderr


def test_the_systemd_environment_file_reads_the_same_through_env_file(shell):
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "deploy" / "systemd" / "fallback.env.example"
    result = shell.invoke(cli, ["--env-file", str(example), "check", "--help"])
    assert result.exit_code == 0
    assert os.environ["FALLBACK_MAIN_URL"] == "https://www.example.com"
    assert os.environ["FALLBACK_TRUSTED_PROXIES"] == "1"
