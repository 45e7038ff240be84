"""The standby's own items: its secrets and a durable database (its public URL and page: `public`)."""

from __future__ import annotations

from pathlib import Path

from fallback.core.parsers import is_postgres_url
from fallback.core.settings import Settings
from fallback.drill.items import FAIL, PASS, WARN, Item

EPHEMERAL_FILESYSTEMS = {"tmpfs", "ramfs"}
# Where buildpack platforms run the app from: /app (Heroku, Scalingo, Dokku's herokuish), and /workspace, the
# application directory of Cloud Native Buildpacks (Dokku on arm64; deploy/paas/README.md cites both).
PAAS_APP_DIRS = ("/app", "/workspace")


def secrets_items(settings: Settings) -> list[Item]:
    """Whether the admin password and the secret key are set rather than missing or generated."""
    checks = (
        ("admin password", "ADMIN_PASSWORD", settings.admin_password, "the admin area answers 404",
         "set FALLBACK_ADMIN_PASSWORD (12 characters at least) to switch the page and read leads in the show"),
        ("secret key", "SECRET_KEY", settings.secret_key, "one is generated and kept in the database",
         "set FALLBACK_SECRET_KEY, so a new database does not void every form and session"),
    )  # fmt: skip
    return [
        Item(name, PASS, f"FALLBACK_{variable} is set")
        if value
        else Item(name, WARN, f"FALLBACK_{variable} is not set: {without}", advice)
        for name, variable, value, without, advice in checks
    ]


def admission_item(settings: Settings) -> Item:
    """Whether the team chose an admission rate, warned when fallback is the entry point and none is set.

    With no trusted proxy, fallback is the entry point (a DNS switch or a campaign URL): without a rate, every
    visitor goes straight on to the main site however many arrive. The default stays off; the team chooses.
    """
    name = "admission"
    if settings.admit_rate is not None:
        adapt = ", following the main site's health" if settings.admit_adapt else ""
        return Item(name, PASS, f"FALLBACK_ADMIT_RATE sends at most {settings.admit_rate:g} a second on{adapt}")
    if settings.trusted_proxies:
        return Item(name, PASS, "off, behind a proxy: the proxy sends visitors to the main site, not fallback")
    return Item(
        name,
        WARN,
        "FALLBACK_ADMIT_RATE is off and fallback is the entry point (no trusted proxy: a DNS switch or a campaign"
        " URL): every visitor is sent on to the main site at once, however many arrive",
        "if the main site may not take the spike, set FALLBACK_ADMIT_RATE to what it can take (N/second): the others"
        " wait their turn on the page and can leave their address (see the Admission page of the docs)",
    )


def mount_of(path: Path, mounts: str) -> tuple[str, str | None]:
    """The mount point holding `path` and its filesystem type, from /proc/mounts' text (the longest point wins)."""
    best, fstype = "", None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, fields[2]
    return best, fstype


def ephemeral_app_path(folder: Path, mount_point: str) -> bool:
    """Whether `folder` is in a buildpack platform's app directory (/app, /workspace) with no storage mounted there.

    Heroku and Scalingo run the app from /app on a filesystem each restart or deploy replaces, and Dokku's
    containers too (from /app, or /workspace when built with Cloud Native Buildpacks), unless a storage
    directory is mounted into that directory (deploy/paas/README.md).
    """
    for app_dir in PAAS_APP_DIRS:
        if folder == Path(app_dir) or app_dir in map(str, folder.parents):
            return not (mount_point == app_dir or mount_point.startswith(app_dir + "/"))
    return False


def database_item(database: str, mounts: str | None = None, timeout: float = 5.0) -> Item:
    """Whether the database (FALLBACK_DATABASE) outlives a restart: a SQLite file on tmpfs or in a PaaS's /app
    does not; a PostgreSQL database must answer from here."""
    name = "durable database"
    if is_postgres_url(database):
        return postgres_item(database, timeout)
    folder = Path(database).expanduser().resolve().parent
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return Item(name, PASS, f"SQLite in {folder} (no /proc/mounts to check the filesystem)")
    point, fstype = mount_of(folder, mounts)
    if fstype in EPHEMERAL_FILESYSTEMS:
        return Item(
            name,
            WARN,
            f"SQLite in {folder}, on {fstype}: leads are lost on reboot",
            "put FALLBACK_DATABASE on a persistent disk, or use PostgreSQL",
        )
    if ephemeral_app_path(folder, point):
        return Item(
            name,
            WARN,
            f"SQLite in {folder}: a buildpack platform's app directory (Heroku, Scalingo; Dokku without mounted"
            " storage) is wiped on each restart or deploy",
            "use PostgreSQL (FALLBACK_DATABASE=$DATABASE_URL), or on Dokku mount storage into the app directory"
            " (deploy/paas/README.md)",
        )
    return Item(name, PASS, f"SQLite in {folder} ({fstype or 'unknown filesystem'})")


def postgres_item(database: str, timeout: float) -> Item:
    """Whether the PostgreSQL database answers from here, with these credentials."""
    from fallback.storage import StorageError
    from fallback.storage.postgres_url import ping, safe_url

    name = "durable database"
    try:
        version = ping(database, timeout)
    except StorageError as error:
        return Item(
            name,
            FAIL,
            f"PostgreSQL at {safe_url(database)} does not answer: {error}",
            "check FALLBACK_DATABASE (host, port, credentials) and that the server runs",
        )
    return Item(name, PASS, f"PostgreSQL {version} answers at {safe_url(database)}")
