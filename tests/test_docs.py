"""The docs stay true: every setting, command, route and CSV column documented as the code has it, the quick start
is what CI runs, and the MkDocs site builds with every link resolved and nothing fetched from another origin."""

import importlib
import os
import re
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fallback.cli import cli
from fallback.core.settings import Settings
from fallback.core.settings_table import markdown_table
from fallback.team.export import csv_chunks

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


def page(name: str) -> str:
    return (DOCS / name).read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def documented_settings() -> dict[str, str]:
    """The configuration page's settings table: each variable and its default cell."""
    return dict(re.findall(r"^\| `((?:FALLBACK_)?[A-Z_]+)` \| ([^|]*) \|", page("configuration.md"), re.MULTILINE))


def test_the_configuration_pages_table_is_generated_from_the_declaration():
    assert markdown_table() in page("configuration.md"), (
        "run: python -m fallback.core.settings_table docs/configuration.md"
    )


@pytest.mark.parametrize("variable", Settings.variables())
def test_the_configuration_page_documents_every_setting(variable):
    assert f"| `{variable}` |" in page("configuration.md")


def test_every_setting_of_the_configuration_page_is_declared():
    documented = documented_settings()
    assert documented, "the configuration page has no settings table"
    assert set(documented) <= set(Settings.variables())


def test_every_default_the_configuration_page_gives_is_the_one_the_code_applies():
    declared = {variable.name: variable for variable in Settings.declared()}
    for name, cell in documented_settings().items():
        variable = declared[name]
        shown = re.match(r"`([^`]*)`", cell.strip())
        if shown:
            assert variable.default is not None, f"{name}: the docs give `{shown.group(1)}`, the code no default"
            assert variable.parse(shown.group(1)) == variable.read({}), name
        else:
            assert not variable.default, f"{name}: the docs give no default ({cell.strip()}), the code does"


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_the_cli_page_documents_every_command(command):
    assert f"`fallback {command}" in page("cli.md")


def test_the_leads_page_lists_the_exports_columns_in_their_order():
    listed = re.search(r"stable columns\n\(`([^`]+)`\)", page("leads.md"))
    assert listed, "the leads page names the export's columns"
    header = next(csv_chunks([])).decode().splitlines()[0]
    assert [column.strip() for column in listed.group(1).split(",")] == header.split(",")


def routes_in_table(text: str) -> list[tuple[str, str]]:
    """(method, path) of each table row whose first cell is `METHOD path` or a bare `/path`; GET when none."""
    rows = re.findall(r"^\| `(?:(GET|POST|PUT|DELETE|PATCH) )?([^`]+)` \|", text, re.MULTILINE)
    return [(method or "GET", path.split("?", 1)[0]) for method, path in rows]


def endpoint(app, method: str, path: str) -> str:
    """The endpoint that answers `method path`, whatever the visitor catch-all would answer otherwise."""
    return app.url_map.bind("localhost").match(path, method=method)[0]


def test_every_route_of_the_http_page_is_served_by_its_own_view(app):
    visitor_catch_all = endpoint(app, "GET", "/no/such/page")
    routes = [(method, path) for method, path in routes_in_table(page("http.md")) if path.startswith("/")]
    assert len(routes) >= 9, routes
    for method, path in routes:
        assert endpoint(app, method, path) != visitor_catch_all, f"{method} {path}"


API = "/_fallback/api/v1/"


def test_the_api_page_documents_every_api_route_and_no_other(app):
    api_catch_all = endpoint(app, "GET", API + "no/such/route")
    served = {
        (method, rule.rule.removeprefix(API))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(API) and rule.endpoint != api_catch_all
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert set(routes_in_table(page("api.md"))) == served


def test_the_development_pages_storage_row_names_every_store(storage):
    stores = sorted(name for name, value in vars(storage).items() if type(value).__name__.endswith("Store"))
    assert len(stores) >= 8, stores
    row = re.search(r"^\| `storage/` \|.*$", page("development.md"), re.MULTILINE)
    assert row, "the development page's module table has a storage row"
    for name in stores:
        assert f"`{name}`" in row.group(0), name


def test_every_module_the_docs_name_exists():
    """Modules move (issue 22): a page naming a file or a class of fallback/ names one that is there."""
    text = README + "".join(path.read_text() for path in DOCS.glob("*.md"))
    paths = set(re.findall(r"`(fallback/[\w/.-]*)`", text))
    objects = set(re.findall(r"`(fallback(?:\.[a-z_]+)+)\.([A-Z]\w+)`", text))
    assert len(paths) >= 5 and objects, (paths, objects)
    assert not [path for path in paths if not (ROOT / path).exists()]
    assert not [f"{module}.{name}" for module, name in objects if not hasattr(importlib.import_module(module), name)]


def test_the_quick_start_has_exactly_two_commands():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "fallback serve" in commands[0] and "pytest" in commands[1]


def test_ci_runs_the_readmes_test_command():
    assert quick_start_commands()[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_ci_builds_the_docs_strictly():
    assert any("mkdocs build --strict" in line for line in (ROOT / ".ci" / "run").read_text().splitlines())


def test_the_readme_links_every_docs_page_and_every_page_is_in_the_sites_nav():
    pages = sorted(path.name for path in DOCS.glob("*.md") if path.name != "index.md")
    nav = (ROOT / "mkdocs.yml").read_text()
    for name in pages:
        assert f"(docs/{name})" in README, name
        assert f": {name}" in nav, name


def test_the_procfile_runs_serve():
    assert (ROOT / "Procfile").read_text().strip() == "web: fallback serve"


@pytest.mark.slow  # pip builds a wheel: half a minute
def test_a_wheel_built_from_the_repo_carries_the_templates(tmp_path):
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
    catalogs = sorted((ROOT / "fallback" / "translations").glob("*/LC_MESSAGES/messages.mo"))
    assert len(catalogs) >= 5  # the compiled catalogs are committed: the wheel needs no build step for them
    assert {f"fallback/{path.relative_to(ROOT / 'fallback').as_posix()}" for path in catalogs} <= set(names)
    modules = {f"fallback/{path.relative_to(ROOT / 'fallback').as_posix()}" for path in ROOT.glob("fallback/**/*.py")}
    assert "fallback/cli/__init__.py" in modules and modules <= set(names)


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    """The site as CI builds it: strict, so a link or an anchor that does not resolve fails the build."""
    site = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml")]
        + ["--site-dir", str(site)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, build.stderr
    return site


# Attributes a browser fetches on its own as it renders the page (an <a href> is fetched only when followed).
FETCHED = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src", "audio": "src",
           "video": "src", "object": "data", "embed": "src"}  # fmt: skip


class FetchedURLs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value and (name == FETCHED.get(tag) or name == "srcset"):
                self.urls.append(value)
            if value and name == "style":
                self.urls.extend(re.findall(r"url\(\s*['\"]?([^'\")]+)", value))


def another_origin(url: str) -> bool:
    return url.startswith("//") or re.match(r"[a-z][a-z0-9+.-]*://", url.strip(), re.IGNORECASE) is not None


@pytest.mark.slow
def test_the_site_builds_strictly_with_a_page_per_topic(built_site):
    for name in ("configuration", "cli", "api", "webhooks", "monitoring", "development"):
        assert (built_site / name / "index.html").exists(), name
    cli = (built_site / "cli" / "index.html").read_text()
    assert "fallback mode auto|up|down" in cli, "a pipe escaped in a table's code span for GitHub shows bare"
    assert not [html for html in built_site.rglob("*.html") if "\\|" in html.read_text()]


@pytest.mark.slow
def test_no_built_page_fetches_anything_from_another_origin(built_site):
    pages = sorted(built_site.rglob("*.html"))
    assert len(pages) > 10
    for html in pages:
        parser = FetchedURLs()
        text = html.read_text()
        parser.feed(text)
        assert parser.urls, f"{html}: no stylesheet or script found, the check would be blind"
        assert not [url for url in parser.urls if another_origin(url)], html
        # Material's bundle fetches mermaid from unpkg.com for a page holding a diagram.
        assert 'class="mermaid"' not in text, html
    for css in built_site.rglob("*.css"):
        imported = re.findall(r"(?:@import\s+|url\(\s*)['\"]?([^'\")\s;]+)", css.read_text())
        assert not [url for url in imported if another_origin(url)], css
