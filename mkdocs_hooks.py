"""MkDocs hooks (mkdocs.yml): the pages are written for GitHub and for the site alike.

GitHub's tables need a pipe inside a code span escaped (`auto\\|up`), and show it bare; Python-Markdown's tables
already ignore pipes inside code spans and would show the backslash. So the site unescapes them on table rows.
"""

import re

CODE_SPAN = re.compile(r"`[^`\n]*`")


def unescaped_code_pipes(row: str) -> str:
    return CODE_SPAN.sub(lambda span: span.group(0).replace("\\|", "|"), row)


def on_page_markdown(markdown: str, **_: object) -> str:
    return "\n".join(unescaped_code_pipes(line) if line.startswith("|") else line for line in markdown.split("\n"))
