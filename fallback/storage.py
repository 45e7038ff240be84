"""Storage: the only module that runs SQL. Leads, the flag and its history, metadata."""

from __future__ import annotations

import dataclasses
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import sqlite_utils

from .state import Flag, iso, parse_iso, utcnow

BUSY_TIMEOUT_SECONDS = 10.0

LEAD_COLUMNS = (
    "id", "email", "name", "message", "consent", "consent_version", "consent_text", "consent_at",
    "landing_path", "language", "created_at", "updated_at", "submissions",
)


class StorageError(RuntimeError):
    """The database cannot be reached or written."""


@dataclasses.dataclass(frozen=True)
class NewLead:
    """One submission of the contact form, as validated by the web layer."""

    email: str
    name: str = ""
    message: str = ""
    consent: bool = False
    consent_version: str | None = None
    consent_text: str | None = None
    landing_path: str = "/"
    language: str = "en"
    spam_reason: str | None = None


def email_key(email: str) -> str:
    """The de-duplication key: the address case-folded, so Paul@Example.org is paul@example.org."""
    return email.strip().casefold()


def _create_base_schema(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
    db["flag"].create(
        {
            "id": int, "mode": str, "mode_until": str, "mode_reason": str, "mode_by": str,
            "mode_changed_at": str, "state": str, "state_since": str, "state_reason": str, "version": int,
        },
        pk="id", not_null={"mode", "state", "version"}, if_not_exists=True,
    )
    db.execute(
        "INSERT OR IGNORE INTO flag (id, mode, state, version) VALUES (1, 'auto', 'unknown', 0)"
    )
    db["mode_changes"].create(
        {"id": int, "at": str, "mode": str, "until": str, "reason": str, "by": str},
        pk="id", not_null={"at", "mode"}, if_not_exists=True,
    )
    db["leads"].create(
        {
            "id": int, "email": str, "email_key": str, "name": str, "message": str,
            "consent": int, "consent_version": str, "consent_text": str, "consent_at": str,
            "landing_path": str, "language": str, "created_at": str, "updated_at": str,
            "submissions": int, "spam": int, "spam_reason": str,
        },
        pk="id", not_null={"email", "email_key", "created_at", "updated_at", "submissions", "spam"},
        defaults={"submissions": 1, "spam": 0, "consent": 0, "name": "", "message": ""},
        if_not_exists=True,
    )
    # Spam is kept apart: only genuine leads are unique per address.
    db.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS leads_email_key ON leads(email_key) WHERE spam = 0"
    )
    db["leads"].create_index(["updated_at"], if_not_exists=True)


# Each migration runs once, in order; the schema version is how many have run.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_create_base_schema]


class Storage:
    """The SQLite backend: one connection per thread, WAL, a busy timeout, durable commits."""

    def __init__(self, path: str, clock: Callable[[], datetime] = utcnow):
        self.path = path
        self.clock = clock
        self._local = threading.local()

    # -- connections -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a lead a visitor was thanked for survives a power cut, not only a crash.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        except sqlite3.Error as error:
            raise StorageError(f"cannot open the database {self.path}: {error}") from error
        conn.row_factory = sqlite3.Row
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise StorageError(f"the database is not writable: {error}") from error
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise StorageError(f"the database write failed: {error}") from error
            raise

    def _read(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise StorageError(f"the database read failed: {error}") from error

    # -- schema --------------------------------------------------------------

    def migrate(self) -> int:
        """Create or bring the schema up to date; returns the schema version."""
        with self._write() as conn:
            db = sqlite_utils.Database(conn)
            db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            for migration in MIGRATIONS[version:]:
                migration(db)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(len(MIGRATIONS)),),
            )
        return len(MIGRATIONS)

    def check_writable(self) -> None:
        """Raise StorageError unless a write transaction can be committed now."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('last_write_check', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (iso(self.clock()),),
            )

    def secret_key(self) -> tuple[str, bool]:
        """The stored secret key, generating one on first use; returns (key, generated now)."""
        candidate = secrets.token_urlsafe(32)
        with self._write() as conn:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('secret_key', ?)", (candidate,)
            ).rowcount
            key = conn.execute("SELECT value FROM meta WHERE key = 'secret_key'").fetchone()[0]
        return key, bool(inserted)

    # -- the flag ------------------------------------------------------------

    def flag(self) -> Flag:
        """The persisted flag."""
        row = self._read("SELECT * FROM flag WHERE id = 1")[0]
        return Flag(
            mode=row["mode"],
            mode_until=parse_iso(row["mode_until"]),
            mode_reason=row["mode_reason"],
            mode_by=row["mode_by"],
            mode_changed_at=parse_iso(row["mode_changed_at"]),
            state=row["state"],
            state_since=parse_iso(row["state_since"]),
            state_reason=row["state_reason"],
            version=row["version"],
        )

    def set_mode(self, mode: str, until: datetime | None = None, reason: str | None = None,
                 by: str | None = None) -> Flag:
        """Force the page on (`down`), off (`up`), or hand back to the checker (`auto`); recorded."""
        if mode not in ("auto", "up", "down"):
            raise ValueError(f"unknown mode {mode!r}")
        now = iso(self.clock())
        until_text = iso(until) if until and mode != "auto" else None
        with self._write() as conn:
            conn.execute(
                "UPDATE flag SET mode = ?, mode_until = ?, mode_reason = ?, mode_by = ?, "
                "mode_changed_at = ?, version = version + 1 WHERE id = 1",
                (mode, until_text, reason, by, now),
            )
            conn.execute(
                "INSERT INTO mode_changes (at, mode, until, reason, by) VALUES (?, ?, ?, ?, ?)",
                (now, mode, until_text, reason, by),
            )
        return self.flag()

    def mode_changes(self, limit: int = 20) -> list[dict]:
        """The latest mode changes, newest first."""
        rows = self._read("SELECT * FROM mode_changes ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(row) for row in rows]

    # -- leads ---------------------------------------------------------------

    def save_lead(self, lead: NewLead) -> int:
        """Store one submission durably (committed on return); the same address updates one lead."""
        now = iso(self.clock())
        values = {
            "email": lead.email.strip(), "email_key": email_key(lead.email), "name": lead.name,
            "message": lead.message, "consent": int(lead.consent),
            "consent_version": lead.consent_version if lead.consent else None,
            "consent_text": lead.consent_text if lead.consent else None,
            "consent_at": now if lead.consent else None, "landing_path": lead.landing_path,
            "language": lead.language, "now": now, "spam": int(lead.spam_reason is not None),
            "spam_reason": lead.spam_reason,
        }
        insert = (
            "INSERT INTO leads (email, email_key, name, message, consent, consent_version, "
            "consent_text, consent_at, landing_path, language, created_at, updated_at, submissions, "
            "spam, spam_reason) VALUES (:email, :email_key, :name, :message, :consent, "
            ":consent_version, :consent_text, :consent_at, :landing_path, :language, :now, :now, 1, "
            ":spam, :spam_reason)"
        )
        if lead.spam_reason is None:
            # A later submission keeps earlier details it does not replace, and consent once given.
            insert += (
                " ON CONFLICT(email_key) WHERE spam = 0 DO UPDATE SET email = excluded.email, "
                "name = CASE WHEN excluded.name != '' THEN excluded.name ELSE name END, "
                "message = CASE WHEN excluded.message != '' THEN excluded.message ELSE message END, "
                "consent = MAX(consent, excluded.consent), "
                "consent_version = COALESCE(excluded.consent_version, consent_version), "
                "consent_text = COALESCE(excluded.consent_text, consent_text), "
                "consent_at = COALESCE(excluded.consent_at, consent_at), "
                "language = excluded.language, updated_at = excluded.updated_at, "
                "submissions = submissions + 1"
            )
        with self._write() as conn:
            lead_id = conn.execute(insert + " RETURNING id", values).fetchall()[0][0]
        return lead_id

    def iter_leads(self, since: datetime | None = None, until: datetime | None = None,
                   batch: int = 1000) -> Iterator[dict]:
        """Genuine leads (spam left out) by latest submission, `since` inclusive, `until` exclusive."""
        conditions, params = ["spam = 0"], []
        if since is not None:
            conditions.append("updated_at >= ?")
            params.append(iso(since))
        if until is not None:
            conditions.append("updated_at < ?")
            params.append(iso(until))
        sql = (
            f"SELECT {', '.join(LEAD_COLUMNS)} FROM leads WHERE {' AND '.join(conditions)} "
            "ORDER BY updated_at, id"
        )
        # A connection of its own, so a long export never holds a request thread's connection.
        conn = self._connect()
        try:
            cursor = conn.execute(sql, params)
            while rows := cursor.fetchmany(batch):
                for row in rows:
                    yield dict(row)
        finally:
            conn.close()

    def recent_leads(self, limit: int = 50, spam: bool = False) -> list[dict]:
        """The latest leads (or suspected spam), newest first."""
        rows = self._read(
            "SELECT * FROM leads WHERE spam = ? ORDER BY updated_at DESC, id DESC LIMIT ?",
            (int(spam), limit),
        )
        return [dict(row) for row in rows]

    def count_leads(self) -> dict[str, int]:
        """How many genuine leads and how many suspected spam submissions are stored."""
        row = self._read(
            "SELECT COALESCE(SUM(spam = 0), 0) AS leads, COALESCE(SUM(spam = 1), 0) AS spam FROM leads"
        )[0]
        return {"leads": row["leads"], "spam": row["spam"]}

    def forget(self, email: str) -> int:
        """Erase every lead of one address (case-insensitive), spam included; returns how many."""
        with self._write() as conn:
            erased = conn.execute("DELETE FROM leads WHERE email_key = ?", (email_key(email),)).rowcount
        if erased:
            self._vacuum()
        return erased

    def purge(self, older_than: datetime) -> int:
        """Erase leads whose latest submission is older than `older_than`; returns how many."""
        with self._write() as conn:
            erased = conn.execute(
                "DELETE FROM leads WHERE updated_at < ?", (iso(older_than),)
            ).rowcount
        if erased:
            self._vacuum()
        return erased

    def _vacuum(self) -> None:
        # Erased means erased: no copy left in free pages or the write-ahead log.
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.execute("VACUUM")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:
            raise StorageError(f"erased, but the database could not be compacted: {error}") from error


def open_storage(database: str, clock: Callable[[], datetime] = utcnow) -> Storage:
    """Open the database named by FALLBACK_DATABASE and bring its schema up to date."""
    if database.startswith(("postgresql://", "postgres://")):
        raise StorageError("PostgreSQL is not supported yet: set FALLBACK_DATABASE to a SQLite file path")
    storage = Storage(database, clock)
    storage.migrate()
    return storage
