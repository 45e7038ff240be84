"""deploy/probe: the systemd unit, its environment file and the Procfile line run commands the CLI accepts."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fallback.cli import Failure, cli
from fallback.core.settings import Settings

FOLDER = Path(__file__).resolve().parent.parent / "deploy" / "probe"
UNIT = (FOLDER / "fallback-probe.service").read_text()
ENV_EXAMPLE = (FOLDER / "probe.env.example").read_text()


def unit_values(key: str) -> list[str]:
    """Every value the unit gives `key`, in order."""
    return re.findall(rf"^{key}=(.*)$", UNIT, re.M)


def example_environment() -> dict[str, str]:
    """The variables probe.env.example sets (its commented examples left out)."""
    return dict(re.findall(r"^([A-Z_]+)=(.*)$", ENV_EXAMPLE, re.M))


def expand(words: list[str], environment: dict[str, str]) -> list[str]:
    """`${NAME}` and `$NAME` replaced as systemd and a Procfile's shell replace them."""
    return [re.sub(r"\$\{?([A-Z_]+)\}?", lambda match: environment[match.group(1)], word) for word in words]


def accepted(argv: list[str]) -> dict:
    """The parameters `fallback` parses from `argv` (its program name first), or click's error."""
    assert Path(argv[0]).name == "fallback", argv
    name, rest = argv[1], argv[2:]
    command = cli.get_command(None, name)  # type: ignore[arg-type]
    assert command is not None, f"no command {name}"
    with command.make_context(name, rest) as context:
        return {"command": name, **context.params}


def test_the_units_exec_start_is_a_probe_command_the_cli_accepts():
    [exec_start] = unit_values("ExecStart")
    params = accepted(expand(shlex.split(exec_start), example_environment()))
    assert params["command"] == "probe" and params["report_to"] == "https://sorry.example.com"


def test_the_procfile_line_is_a_probe_command_the_cli_accepts():
    [line] = [line for line in (FOLDER / "Procfile").read_text().splitlines() if line.strip()]
    kind, command = line.split(":", 1)
    assert kind == "probe"
    params = accepted(expand(shlex.split(command), example_environment()))
    assert params["command"] == "probe" and params["report_to"] == "https://sorry.example.com"


def test_the_unit_restarts_after_a_crash_but_not_after_a_refusal():
    assert unit_values("Restart") == ["on-failure"]
    assert unit_values("RestartPreventExitStatus") == [str(Failure.exit_code)]


def test_the_unit_runs_as_a_transient_unprivileged_user_with_its_settings_from_a_file():
    assert unit_values("DynamicUser") == ["yes"] and unit_values("NoNewPrivileges") == ["yes"]
    assert unit_values("ProtectSystem") == ["strict"] and unit_values("CapabilityBoundingSet") == [""]
    assert unit_values("EnvironmentFile") == ["/etc/fallback/probe.env"]


def test_the_environment_file_names_only_variables_fallback_reads():
    named = set(re.findall(r"^#? ?(FALLBACK_[A-Z_]+)=", ENV_EXAMPLE, re.M))
    assert {"FALLBACK_URL", "FALLBACK_API_TOKEN", "FALLBACK_MAIN_URL"} <= named
    # FALLBACK_URL is the option's variable (--report-to, as --url elsewhere); the rest are settings.
    assert named - {"FALLBACK_URL"} <= set(Settings.variables())


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_finds_nothing_wrong_with_the_unit(tmp_path):
    fallback = Path(sys.executable).parent / "fallback"
    unit = tmp_path / "fallback-probe.service"
    unit.write_text(
        UNIT.replace("/opt/fallback/bin/fallback", str(fallback)).replace(
            "/etc/fallback/probe.env", str(FOLDER / "probe.env.example")
        )
    )
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "fallback-probe.service" not in result.stderr, result.stderr
