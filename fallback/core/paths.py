"""Where the package's own files are, for the web app and the mail sender alike (no Flask here); and files that
hold lead data, readable by their owner only (the database, the access log, an export)."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def shipped_templates() -> Path:
    """The shipped templates: inside the package once installed, at the repository's top in a checkout."""
    installed = PACKAGE_DIR / "templates"
    return installed if installed.is_dir() else PACKAGE_DIR.parent / "templates"


# The database holds the leads (and, without FALLBACK_SECRET_KEY, the key that signs admin sessions); the access
# log and an export hold addresses and paths too.
OWNER_ONLY = 0o600


def owner_only(path: str, create: bool = False) -> None:
    """Make the file at `path` readable by its owner only: created so first (whatever the umask), or tightened."""
    if create:
        # O_EXCL: never open an existing file (a database's). Closing any descriptor of a file drops every
        # POSIX lock this process holds on it, SQLite's included ("disk I/O error" follows).
        with contextlib.suppress(OSError):  # there already, or a folder SQLite will say it cannot use
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, OWNER_ONLY))
    with contextlib.suppress(OSError):  # not there (yet), or not ours
        if stat.S_IMODE(os.stat(path).st_mode) & ~OWNER_ONLY:
            os.chmod(path, OWNER_ONLY)
