"""The PaaS files agree with each other and with deploy/paas/README.md: one start command, one Python version,
one list of dependencies (pyproject.toml's).

The platforms themselves cannot be reached from here; what each one reads, and from which of its documents, is
written in deploy/paas/README.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from procs import answers, free_port, start_group, stop_group
from standin import StandIn

ROOT = Path(__file__).resolve().parent.parent
RECIPE = (ROOT / "deploy" / "paas" / "README.md").read_text()
# The main docs: the README and its pages (docs/paas.md, docs/scaling-out.md quote the Procfile line).
DOCS = "".join(path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
CLEVER_PORT = "9000"  # Clever Cloud's Python image: a CC_RUN_COMMAND app listens on 9000 (deploy/paas/README.md)


def procfile_command() -> str:
    [line] = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    kind, command = line.split(":", 1)
    assert kind == "web"
    return command.strip()


def python_version() -> str:
    return (ROOT / ".python-version").read_text().strip()


def without_database_prefix(command: str, variable: str) -> str:
    """`FALLBACK_DATABASE=$VARIABLE cmd` -> `cmd`: the documented way to pass an add-on's URL on."""
    return command.removeprefix(f"FALLBACK_DATABASE=${variable} ")


def test_the_procfile_has_one_web_line_that_runs_serve():
    assert procfile_command() == "fallback serve"


def test_every_procfile_line_in_the_docs_runs_the_procfiles_command():
    lines = re.findall(r"web: ([^`\n]+)", RECIPE + DOCS)
    assert lines, "the docs quote no Procfile line"
    for line in lines:
        assert without_database_prefix(line.strip(), "DATABASE_URL") == procfile_command(), line


def test_clever_clouds_run_command_is_the_procfiles_on_its_port():
    commands = re.findall(r'CC_RUN_COMMAND="([^"]+)"', RECIPE + DOCS)
    assert len(commands) >= 2, "deploy/paas/README.md gives CC_RUN_COMMAND with and without PostgreSQL"
    for command in commands:
        assert without_database_prefix(command, "POSTGRESQL_ADDON_URI") == f"{procfile_command()} --port {CLEVER_PORT}"


def test_the_recipe_table_shows_the_shipped_files():
    rows = dict(re.findall(r"^\| `(Procfile|requirements\.txt|\.python-version)` \| `([^`]+)` \|", RECIPE, re.M))
    assert rows == {
        "Procfile": (ROOT / "Procfile").read_text().strip(),
        "requirements.txt": "".join(requirement_lines()),
        ".python-version": python_version(),
    }


def test_the_python_version_is_one_version_everywhere():
    version = python_version()
    assert re.fullmatch(r"3\.\d+", version), "the major form (3.x) gets the platform's security releases"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert Version(version) in SpecifierSet(requires), f".python-version {version} vs requires-python {requires}"
    named = re.findall(r"CC_PYTHON_VERSION=([0-9.]+)", RECIPE + DOCS + (ROOT / ".ci" / "run").read_text())
    assert named, "deploy/paas/README.md names CC_PYTHON_VERSION"
    assert set(named) == {version}


def requirement_lines() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.split(" #", 1)[0].strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_requirements_txt_installs_the_project_and_declares_nothing_else():
    assert requirement_lines() == ["."], "dependencies are declared once, in pyproject.toml"


def test_requirements_txt_builds_fallback_from_the_repositorys_root(tmp_path):
    """What a buildpack does: `pip install -r requirements.txt` with the repository as working directory."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "-r", "requirements.txt"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert [wheel.name.split("-")[0] for wheel in tmp_path.glob("*.whl")] == ["fallback"]


def test_clever_clouds_run_command_listens_on_its_port_while_port_is_set(tmp_path):
    """Clever Cloud sets PORT=8080 but routes a CC_RUN_COMMAND app through port 9000: `--port` must win."""
    [command] = [c for c in re.findall(r'CC_RUN_COMMAND="([^"]+)"', RECIPE) if c.startswith("fallback ")]
    port, platform_port = free_port(), free_port()
    bin_dir = str(Path(sys.executable).parent)
    with StandIn() as main_site:
        env = {
            **os.environ,
            "FALLBACK_MAIN_URL": "https://www.example.com",
            "FALLBACK_CHECK_URLS": main_site.url,
            "PORT": str(platform_port),
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        }
        process = start_group(
            ["bash", "-c", "exec " + command.replace(f"--port {CLEVER_PORT}", f"--port {port}")],
            env,
            tmp_path,
            tmp_path / "clever.log",
            answers(f"http://127.0.0.1:{port}/pricing"),
            name="the CC_RUN_COMMAND",
            seconds=20,
        )
        try:
            response = requests.get(f"http://127.0.0.1:{port}/pricing", allow_redirects=False, timeout=5)
            assert response.status_code in (302, 503)  # redirected or served: fallback answers on the command's port
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://127.0.0.1:{platform_port}/", timeout=2)
        finally:
            stop_group(process)
