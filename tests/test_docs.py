"""The README stays true: every setting and command documented, the quick start is what CI runs."""

import re
import zipfile
from pathlib import Path

import pytest

from fallback.cli import cli
from fallback.core.settings import Settings, markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def spec_settings() -> dict[str, str]:
    """SPEC section 2's variables and their default cells; the test skips where the SPEC is not beside the checkout."""
    spec = ROOT.parent / "shared" / "SPEC.md"
    if not spec.exists():
        pytest.skip("no SPEC.md beside the checkout (../shared/SPEC.md)")
    section = spec.read_text().split("## 2.", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `((?:FALLBACK_)?[A-Z_]+)` \| ([^|]*) \|", section, re.MULTILINE))


def test_the_readmes_configuration_table_is_generated_from_the_declaration():
    assert markdown_table() in README, "run: python -m fallback.config README.md"


@pytest.mark.parametrize("variable", Settings.variables())
def test_the_readme_documents_every_setting(variable):
    assert f"| `{variable}` |" in README


def test_every_variable_of_the_spec_is_declared():
    assert set(spec_settings()) <= set(Settings.variables())


def test_every_declared_default_is_the_specs():
    declared = {variable.name: variable.default for variable in Settings.declared()}
    for name, cell in spec_settings().items():
        spec_default = re.match(r"`([^`]*)`", cell.strip())
        if spec_default:
            assert declared[name] == spec_default.group(1), name
        else:
            assert not declared[name], f"{name}: the SPEC gives no default ({cell.strip()})"


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


@pytest.mark.slow  # pip builds a wheel: half a minute
def test_a_wheel_built_from_the_repo_carries_the_templates(tmp_path):
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("fallback-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for template in ("page.html", "thanks.html", "page.css", "admin/dashboard.html"):
        assert f"fallback/templates/{template}" in names
    modules = {f"fallback/{path.relative_to(ROOT / 'fallback').as_posix()}" for path in ROOT.glob("fallback/**/*.py")}
    assert "fallback/cli/__init__.py" in modules and modules <= set(names)
