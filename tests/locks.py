"""The pinned dependency set (requirements.lock and the files .ci/lock writes beside it), read as pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
TEST_LOCK = ROOT / "requirements-test.lock"
PAAS_REQUIREMENTS = ROOT / "requirements.txt"


def logical_lines(path: Path) -> list[str]:
    """The file's requirement lines, continuations joined and comments dropped."""
    joined = path.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines()]
    return [" ".join(line.split()) for line in lines if line and not line.startswith("#")]


def pins(path: Path) -> dict[str, tuple[str, str]]:
    """Each pinned project of a lock: its canonical name -> (the `==` line without hashes, and its hashes joined).

    A line that is not an exact pin (a range, a URL, a bare name) raises: a lock holds nothing else, apart from
    the project itself (`.`), which is left out here."""
    found: dict[str, tuple[str, str]] = {}
    for line in logical_lines(path):
        if line == ".":
            continue
        requirement_text, *hashes = line.split(" --hash=")
        requirement = Requirement(requirement_text)
        [specifier] = requirement.specifier  # exactly one, and below: `==`
        assert specifier.operator == "==" and not requirement.url, f"{path.name}: not pinned: {line}"
        found[canonicalize_name(requirement.name)] = (requirement_text.strip(), " ".join(sorted(hashes)))
    return found


def versions(path: Path, here: bool = False) -> dict[str, str]:
    """name -> pinned version; with `here`, only the pins whose marker holds on this Python and platform (a
    universal lock also pins what only Windows or PyPy would install)."""
    found = {}
    for name, (text, _) in pins(path).items():
        requirement = Requirement(text)
        if not here or requirement.marker is None or requirement.marker.evaluate():
            found[name] = str(next(iter(requirement.specifier)).version)
    return found


def declared(*extras: str) -> list[Requirement]:
    """pyproject.toml's dependencies, plus those of the named extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = project["dependencies"] + [text for extra in extras for text in project["optional-dependencies"][extra]]
    return [Requirement(text) for text in texts]
