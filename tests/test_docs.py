"""The README stays true: every setting and command documented, the quick start is what CI runs."""

import re
import zipfile
from pathlib import Path

import pytest

from fallback.cli import cli
from fallback.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


@pytest.mark.parametrize("variable", Settings.variables())
def test_the_readme_documents_every_setting(variable):
    assert f"| `{variable}` |" in README


def test_the_settings_cover_the_spec_table():
    spec = ROOT.parent / "shared" / "SPEC.md"
    if not spec.exists():
        pytest.skip("no SPEC.md beside the checkout")
    documented = set(re.findall(r"^\| `((?:FALLBACK_)?[A-Z_]+)` \|", spec.read_text(), re.MULTILINE))
    assert documented <= set(Settings.variables())


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_the_readme_documents_every_command(command):
    assert f"`fallback {command}" in README


def test_the_quick_start_has_exactly_two_commands():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "fallback serve" in commands[0] and "pytest" in commands[1]


def test_ci_runs_the_readmes_test_command():
    assert quick_start_commands()[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_procfile_runs_serve():
    assert (ROOT / "Procfile").read_text().strip() == "web: fallback serve"


def test_a_wheel_built_from_the_repo_carries_the_templates(tmp_path):
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("fallback-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for template in ("page.html", "thanks.html", "page.css", "admin/dashboard.html"):
        assert f"fallback/templates/{template}" in names
    assert "fallback/cli.py" in names
