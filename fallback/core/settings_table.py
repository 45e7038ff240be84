"""The docs' settings table (docs/configuration.md), written from the settings' declarations.

`python -m fallback.core.settings_table docs/configuration.md` rewrites the table in place (with no argument, it
prints it); tests/test_docs.py checks that the page holds the table as the declarations write it.
"""

from __future__ import annotations

import sys

from fallback.core.settings import Settings

TABLE_HEADER = "| variable | default | meaning |\n|---|---|---|\n"


def markdown_table() -> str:
    """The docs' settings table, from the declarations."""
    rows = (f"| `{v.name}` | {v.shown_in_docs()} | {v.help} |\n" for v in Settings.declared())
    return TABLE_HEADER + "".join(rows)


def with_table(page: str) -> str:
    """`page` with its settings table (from the header to the first blank line) replaced by a fresh one."""
    start = page.index(TABLE_HEADER)
    end = page.index("\n\n", start)
    return page[:start] + markdown_table() + page[end + 1 :]


def main(arguments: list[str]) -> None:
    """Rewrite the table of the page named in `arguments`, or print the table when none is named."""
    if not arguments:
        sys.stdout.write(markdown_table())
        return
    with open(arguments[0], encoding="utf-8") as file:
        updated = with_table(file.read())
    with open(arguments[0], "w", encoding="utf-8") as file:
        file.write(updated)


if __name__ == "__main__":
    main(sys.argv[1:])
