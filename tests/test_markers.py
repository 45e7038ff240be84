"""The quick selection stays quick: every test module that starts a server process is marked slow as a whole.

`pytest -m "not slow"` leaves out what starts `fallback serve`, nginx, HAProxy, PostgreSQL or Chromium. A module
does that through the support modules (served.py, proxies.py, pg.py, procs.py's start functions) or through
bench/load.py, so a module that imports one of them carries `pytestmark = pytest.mark.slow`; the PostgreSQL
variants of the other modules' tests are slow through conftest.py. Read from the source, without importing it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SERVER_MODULES = {"served", "proxies", "pg"}
SERVER_FUNCTIONS = {"start_group", "spawn_group", "wait_ready"}  # procs.py's, which start and await a process
SERVER_BENCHES = {"load", "quorum"}  # bench scripts that start `fallback serve` themselves


def starts_servers(tree: ast.Module) -> list[str]:
    """What in a test module starts server processes: the helpers it imports, the bench scripts it loads."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name in SERVER_MODULES | {"procs"}]
        elif isinstance(node, ast.ImportFrom) and node.module in SERVER_MODULES:
            found.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "procs":
            found += [f"procs.{alias.name}" for alias in node.names if alias.name in SERVER_FUNCTIONS]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "bench_module" and node.args:
            name = getattr(node.args[0], "value", None)
            found += [f"bench/{name}.py"] if name in SERVER_BENCHES else []
    return found


def marked_slow(tree: ast.Module) -> bool:
    """Whether the module sets `pytestmark` to pytest.mark.slow (alone or in a list)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "pytestmark" for target in node.targets):
            return "pytest.mark.slow" in ast.unparse(node.value)
    return False


def test_every_module_that_starts_servers_is_marked_slow():
    unmarked = {}
    for path in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text(), str(path))
        if (found := starts_servers(tree)) and not marked_slow(tree):
            unmarked[path.name] = found
    assert not unmarked, f"add `pytestmark = pytest.mark.slow` to these modules (what starts servers): {unmarked}"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from served import Served", ["served"]),
        ("import proxies", ["proxies"]),
        ("from procs import free_port", []),  # a free port starts nothing
        ("from procs import free_port, start_group", ["procs.start_group"]),
        ("with bench_module('load') as load: pass", ["bench/load.py"]),
        ("with bench_module('followup') as bench: pass", []),
    ],
)
def test_the_guard_sees_what_starts_a_server_and_what_does_not(source, expected):
    assert starts_servers(ast.parse(source)) == expected


def test_the_guard_reads_a_module_mark_alone_or_in_a_list():
    assert marked_slow(ast.parse("pytestmark = pytest.mark.slow"))
    assert marked_slow(ast.parse("pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('x')]"))
    assert not marked_slow(ast.parse("pytestmark = pytest.mark.usefixtures('x')"))
    assert not marked_slow(ast.parse("import pytest"))
