"""Where the package's own files are, for the web app and the mail sender alike (no Flask here)."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def shipped_templates() -> Path:
    """The shipped templates: inside the package once installed, at the repository's top in a checkout."""
    installed = PACKAGE_DIR / "templates"
    return installed if installed.is_dir() else PACKAGE_DIR.parent / "templates"
