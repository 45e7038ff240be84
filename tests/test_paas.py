"""The PaaS files agree with each other and with deploy/paas/README.md: one start command, one Python version,
one list of dependencies (pyproject.toml's).

The platforms themselves cannot be reached from here; what each one reads, and from which of its documents, is
written in deploy/paas/README.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests
from locks import LOCK, PAAS_REQUIREMENTS, pins, versions
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version
from procs import answers, free_port, start_group, stop_group
from standin import StandIn

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

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
    lines = re.findall(r"web: ([^`'\n]+)", RECIPE + DOCS)
    assert lines, "the docs quote no Procfile line"
    for line in lines:
        assert without_database_prefix(line.strip(), "DATABASE_URL") == procfile_command(), line


def run_commands(text: str) -> list[str]:
    """Every CC_RUN_COMMAND value quoted in `text`, as an environment variable or a `clever env set`."""
    return re.findall(r"CC_RUN_COMMAND[= ]'([^']+)'", text)


def test_clever_clouds_run_command_is_the_procfiles_on_its_port():
    commands = run_commands(RECIPE + DOCS)
    assert len(commands) >= 2, "deploy/paas/README.md gives CC_RUN_COMMAND with and without PostgreSQL"
    for command in commands:
        assert without_database_prefix(command, "POSTGRESQL_ADDON_URI") == f"{procfile_command()} --port {CLEVER_PORT}"


def test_the_recipe_table_shows_the_shipped_files():
    rows = dict(re.findall(r"^\| `(Procfile|requirements\.txt|\.python-version)` \| `([^`]+)`[^|]*\|", RECIPE, re.M))
    assert rows == {
        "Procfile": (ROOT / "Procfile").read_text().strip(),
        "requirements.txt": ".",  # the project, after the lock's pins (checked below)
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


def test_requirements_txt_installs_the_project_at_the_locks_pins():
    """The project once (`.`), and every other line one of requirements.lock's pins, markers and all, without
    its hashes: pip refuses hashes in a file that also names a directory (docs/dependencies.md)."""
    assert requirement_lines().count(".") == 1
    assert pins(PAAS_REQUIREMENTS) == {name: (pin, "") for name, (pin, _) in pins(LOCK).items()}


@pytest.mark.slow
def test_a_buildpacks_install_of_requirements_txt_gets_the_locks_versions_and_a_working_fallback(tmp_path):
    """What a buildpack does: `pip install -r requirements.txt` into a fresh environment, from the repository's root."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    install = subprocess.run(
        [*pip, "install", "-q", "-r", "requirements.txt"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert install.returncode == 0, install.stderr[-3000:]
    listed = subprocess.run([*pip, "list", "--format", "json"], capture_output=True, text=True, timeout=60, check=True)
    installed = {canonicalize_name(package["name"]): package["version"] for package in json.loads(listed.stdout)}
    assert {name: installed.get(name) for name in versions(LOCK)} == versions(LOCK)
    version = subprocess.run([str(venv / "bin" / "fallback"), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "fallback" in version.stdout


def test_clever_clouds_run_command_listens_on_its_port_while_port_is_set(tmp_path):
    """Clever Cloud sets PORT=8080 but routes a CC_RUN_COMMAND app through port 9000: `--port` must win."""
    [command] = [c for c in run_commands(RECIPE) if c.startswith("fallback ")]
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


def test_a_run_command_naming_a_variable_is_in_single_quotes_so_a_local_shell_leaves_it_alone():
    quoted = re.findall(r"""CC_RUN_COMMAND[= ](["'])(.*?)\1""", RECIPE + DOCS)
    assert quoted, "the docs quote CC_RUN_COMMAND"
    assert [(quote, value) for quote, value in quoted if "$" in value and quote != "'"] == []
    for switch in re.findall(r"echo (.)web: FALLBACK_DATABASE=\$DATABASE_URL", RECIPE):
        assert switch == "'", "the Procfile switch keeps $DATABASE_URL for the platform's shell"


def topology_4() -> dict[str, str]:
    """The main and public URLs of topology 4 (a PaaS custom domain) in docs/deployment.md."""
    guide = (ROOT / "docs" / "deployment.md").read_text()
    section = guide.split("### 4. A PaaS custom domain", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^(FALLBACK_(?:MAIN|PUBLIC)_URL)=(\S+)", section, re.M))


def test_every_main_url_in_the_paas_recipe_is_topology_4s_origin_never_the_public_domain():
    guide = topology_4()
    assert guide["FALLBACK_MAIN_URL"] != guide["FALLBACK_PUBLIC_URL"]
    main_urls = re.findall(r"FALLBACK_MAIN_URL=(\S+)", RECIPE)
    assert len(main_urls) >= 3, "the Heroku, Scalingo and Dokku snippets set the main URL"
    assert set(main_urls) == {guide["FALLBACK_MAIN_URL"]}
    assert set(re.findall(r"FALLBACK_PUBLIC_URL=(\S+)", RECIPE)) == {guide["FALLBACK_PUBLIC_URL"]}
    [example] = re.findall(r"^\| `FALLBACK_MAIN_URL` \| `([^`]+)`", RECIPE, re.M)
    assert example == guide["FALLBACK_MAIN_URL"]


@pytest.mark.parametrize(
    ("platform", "command"),
    [
        ("Heroku", "heroku addons:create heroku-postgresql:"),
        ("Scalingo", "addons-add postgresql postgresql-"),
        ("Dokku", "dokku postgres:create "),
        ("Dokku", "dokku postgres:link "),
        ("Clever Cloud", "clever addon create postgresql-addon "),
    ],
)
def test_each_platform_says_how_to_add_postgresql_and_switch_the_start_command(platform, command):
    section = RECIPE.split(f"\n## {platform}\n", 1)[1].split("\n## ", 1)[0]
    assert command in section
    switch = "FALLBACK_DATABASE=$POSTGRESQL_ADDON_URI" if platform == "Clever Cloud" else "> Procfile"
    assert switch in section


def test_the_recipe_warns_that_a_plan_that_sleeps_stops_the_checker():
    section = RECIPE.split("\n## A plan that never sleeps\n", 1)[1].split("\n## ", 1)[0]
    assert "Eco" in section and "checker" in section
    assert "https://help.heroku.com/Q8OBM85C/how-do-eco-dyno-hours-work" in section


def test_clever_clouds_deploy_health_check_is_healthz():
    assert re.findall(r"CC_HEALTH_CHECK_PATH[= ](\S+)", RECIPE) == ["/_fallback/healthz"] * 2
    assert "| `GET /_fallback/healthz` |" in DOCS  # the route docs/http.md documents


def test_dokku_on_arm64_creates_storage_for_cloud_native_buildpacks_user():
    section = RECIPE.split("\n## Dokku\n", 1)[1].split("\n## ", 1)[0]
    assert "--chown heroku" in section and "1000:1000" in section and "/workspace" in section
