"""A PostgreSQL URL as fallback shows it (without its password), and one connection to see that it answers."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from fallback.storage.base import StorageError

CONNECT_TIMEOUT_SECONDS = 5


def safe_url(url: str) -> str:
    """The database URL without its password, for messages and logs."""
    url = re.sub(r"(://[^:/@?]*):[^@/?]*@", r"\1:***@", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", url)


def password_of(url: str) -> str | None:
    """The password in a database URL, decoded, or None."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def short_error(error: BaseException) -> str:
    """A driver error in one line of at most 300 characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."


def ping(url: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> str:
    """Connect once, outside any pool, and return the server's version; StorageError saying why not.

    `fallback drill` asks this of a PostgreSQL FALLBACK_DATABASE: reachable from here, with these credentials.
    """
    try:
        import psycopg
    except ImportError as error:
        raise StorageError(f"a postgresql:// database needs psycopg 3 ({error})") from None
    secret = password_of(url)
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout)), application_name="fallback drill") as conn:
            return str(conn.execute("SHOW server_version").fetchall()[0][0])
    except psycopg.Error as error:
        said = short_error(error)
        raise StorageError(said.replace(secret, "***") if secret else said) from None
