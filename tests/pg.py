"""A throw-away PostgreSQL server on 127.0.0.1 for the tests: initdb, pg_ctl, one database per test.

Debian's `postgresql` package is all it needs (the binaries under /usr/lib/postgresql/*/bin); no
cluster of the system is used or touched. Run as root, the server runs as the `postgres` user,
since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from procs import free_port


def binaries() -> Path | None:
    """Debian's PostgreSQL binaries, the newest version installed, or None."""
    found = [Path(path).parent for path in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")]
    found = [folder for folder in found if (folder / "initdb").exists() and folder.parts[-2].isdigit()]
    return max(found, key=lambda folder: int(folder.parts[-2])) if found else None


class Cluster:
    """A PostgreSQL cluster in a temporary folder, listening on 127.0.0.1 only, on a free port."""

    def __init__(self):
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.folder = Path(tempfile.mkdtemp(prefix="fallback-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.password = uuid.uuid4().hex
        self._destroyed = False
        # Stopped even if the test run dies without its fixtures' teardown.
        atexit.register(self.destroy)

    def _run(self, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        result = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            log = self.folder / "server.log"
            raise RuntimeError(
                f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
                + (f"\nserver log:\n{log.read_text()[-3000:]}" if log.exists() else "")
            )
        return result

    def start(self) -> Cluster:
        """initdb (the first time), then start and wait until it accepts connections."""
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        if not self.data.exists():
            password_file = self.folder / "password"
            password_file.write_text(self.password)
            if os.geteuid() == 0:
                shutil.chown(password_file, "postgres")
            self._run(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "fallback",
                "--auth=scram-sha-256",
                f"--pwfile={password_file}",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            )
            password_file.unlink()
        # TCP on 127.0.0.1 only; the Unix socket in our own folder, not the system's.
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-t",
            "30",
            "-l",
            str(self.folder / "server.log"),
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.folder}",
            "start",
        )
        return self

    def stop(self) -> None:
        """Stop fast: open sessions are cut, as in a restart or a fail-over."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop", check=False)

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start()

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        """A postgresql:// URL for `database`."""
        return f"postgresql://fallback:{password or self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of `url`, cutting whatever is still connected to it."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        try:
            with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.OperationalError:
            pass  # the server is down (a test stopped it): the whole cluster goes at the end anyway

    def destroy(self) -> None:
        """Stop and remove everything (once)."""
        if self._destroyed:
            return
        self._destroyed = True
        if self.data.exists():
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
