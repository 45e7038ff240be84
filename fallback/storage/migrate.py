"""`fallback migrate --to postgresql://...`: move one SQLite instance's data into PostgreSQL.

Run it from where the SQLite instance ran (FALLBACK_DATABASE names the file), then point every
instance at the PostgreSQL URL. It can be run again, for instance just before switching over to
catch the last leads: only what is new is copied.
"""

from __future__ import annotations

from pathlib import Path

from fallback.core.parsers import is_postgres_url
from fallback.storage import StorageError, open_storage
from fallback.storage.copy import copy_database
from fallback.storage.postgres_url import safe_url


def migrate(source: str, target: str) -> list[str]:
    """Copy the SQLite database at `source` into the PostgreSQL database at `target`; lines saying what.

    Raises ValueError for arguments that cannot work, StorageError when a database fails
    (nothing is then copied: the copy is one transaction).
    """
    if is_postgres_url(source):
        raise ValueError("FALLBACK_DATABASE is already PostgreSQL: point it at the SQLite file to copy from")
    if not is_postgres_url(target):
        raise ValueError("--to: expected a postgresql:// URL")
    if not Path(source).is_file():
        raise ValueError(f"no SQLite database at {source} (FALLBACK_DATABASE): nothing to copy")
    sqlite = open_storage(source)
    try:
        postgres = open_storage(target)
        try:
            report = copy_database(sqlite.db, postgres.db)
        finally:
            postgres.close()
    finally:
        sqlite.close()
    lines = [f"copied {source} into {safe_url(target)}"]
    for table in ("leads", "submissions", "incidents", "events"):
        lines.append(f"{table}: {report[table].copied} copied, {report[table].already_there} already there")
    lines.append("flag: " + ("copied" if report["flag"].copied else "kept (PostgreSQL's had changed already)"))
    secret = report["secret_key"]
    lines.append(
        "secret key: "
        + (
            "copied"
            if secret.copied
            else "kept (PostgreSQL has one already)"
            if secret.already_there
            else "none to copy"
        )
    )
    return lines


__all__ = ["StorageError", "migrate"]
