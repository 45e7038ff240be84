"""The pinned dependency set agrees with pyproject.toml, and installs (docs/dependencies.md).

requirements.lock pins the runtime dependencies with hashes, requirements-test.lock adds the test extra, and
requirements.txt (the PaaS builds') holds the lock's pins without hashes, plus the project. `.ci/lock` writes all three.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from locks import LOCK, PAAS_REQUIREMENTS, ROOT, TEST_LOCK, declared, pins, versions
from packaging.utils import canonicalize_name

# Unit tests that start no server, between them: settings, the probe and notifications (requests, Apprise), the
# contact form through Flask's test client on SQLite (Flask, Babel, WTForms, email-validator, sqlite-utils), the CSV
# export, redaction, and hypothesis. About 80 tests, half a minute on a busy machine.
QUICK_MODULES = ["test_config.py", "test_forms.py", "test_redact.py", "test_properties.py"]


def test_every_dependency_pyproject_declares_is_pinned_at_a_version_it_allows():
    pinned = versions(LOCK)
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement} is not in requirements.lock: run .ci/lock"
        assert requirement.specifier.contains(pinned[name], prereleases=True), f"{requirement} vs {pinned[name]}"


def test_every_test_dependency_is_pinned_too_at_the_same_runtime_versions():
    pinned = versions(TEST_LOCK)
    for requirement in declared("test"):
        name = canonicalize_name(requirement.name)
        assert name in pinned and requirement.specifier.contains(pinned[name], prereleases=True), str(requirement)
    assert {name: pinned.get(name) for name in versions(LOCK)} == versions(LOCK)


@pytest.mark.parametrize("lock", [LOCK, TEST_LOCK], ids=lambda path: path.name)
def test_every_pin_of_a_lock_carries_hashes(lock):
    assert all(hashes.startswith("sha256:") for _, hashes in pins(lock).values()), f"{lock.name}: a pin without hash"


def test_the_paas_requirements_hold_the_locks_pins_and_the_project():
    assert pins(PAAS_REQUIREMENTS) == {name: (pin, "") for name, (pin, _) in pins(LOCK).items()}


def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not found:
        pytest.fail("uv is not installed: pip install -e '.[test]'")
    return found


@pytest.mark.slow
def test_refreshing_the_locks_changes_no_pin(tmp_path):
    """`.ci/lock` run on a copy resolves pyproject.toml again (from the package index) and keeps every pin: a
    dependency added, dropped or narrowed in pyproject.toml without a refresh fails here. New hashes for a pinned
    release (a wheel PyPI added later) are no change of pin."""
    # What .ci/lock reads: pyproject.toml, and for the project's own metadata (`.`) its readme and version file.
    for name in (
        ".ci/lock",
        "pyproject.toml",
        "README.md",
        "fallback/__init__.py",
        LOCK.name,
        TEST_LOCK.name,
        PAAS_REQUIREMENTS.name,
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    result = subprocess.run(
        ["bash", str(tmp_path / ".ci" / "lock")],
        env={**os.environ, "UV": uv()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for path in (LOCK, TEST_LOCK, PAAS_REQUIREMENTS):
        refreshed = {name: pin for name, (pin, _) in pins(tmp_path / path.name).items()}
        assert refreshed == {name: pin for name, (pin, _) in pins(path).items()}, f"{path.name}: run .ci/lock"
    assert (tmp_path / PAAS_REQUIREMENTS.name).read_text().splitlines().count(".") == 1


@pytest.mark.slow
def test_a_fresh_environment_installs_from_the_test_lock_with_hashes_and_passes_unit_tests(tmp_path):
    """What the image does, with the test extra: every pin checked against its hashes, then the project with
    --no-deps; pip then finds nothing missing, and unit tests pass on exactly these versions."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")

    def pip(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        result = subprocess.run([python, "-m", "pip", *args], capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"pip {' '.join(args)}:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
        return result

    pip("install", "-q", "--require-hashes", "-r", str(TEST_LOCK))
    pip("install", "-q", "--no-deps", str(ROOT))
    pip("check", timeout=120)
    listed = json.loads(pip("list", "--format", "json", timeout=120).stdout)
    installed = {canonicalize_name(package["name"]): package["version"] for package in listed}
    assert {name: installed.get(name) for name in versions(TEST_LOCK, here=True)} == versions(TEST_LOCK, here=True)
    tests = [str(ROOT / "tests" / module) for module in QUICK_MODULES]
    run = subprocess.run(
        [str(venv / "bin" / "pytest"), "-q", "-n", "0", "-p", "no:cacheprovider", "-m", "not slow", *tests],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:]
    assert " passed" in run.stdout.splitlines()[-1]
