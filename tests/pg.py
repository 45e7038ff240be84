"""A throw-away PostgreSQL server on 127.0.0.1 for the tests: initdb, pg_ctl, one database per test."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def binaries() -> Path | None:
    """Debian's PostgreSQL binaries, the newest version installed, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """A PostgreSQL cluster in a temporary folder, run as the `postgres` user (PostgreSQL refuses root)."""

    def __init__(self):
        self.bin = binaries()
        self.folder = Path(tempfile.mkdtemp(prefix="fallback-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.password = uuid.uuid4().hex

    def _as_postgres(self, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *command], check=check, capture_output=True, text=True, timeout=timeout)

    def start(self) -> Cluster:
        """initdb (first time) and start on 127.0.0.1 only."""
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        if not self.data.exists():
            password_file = self.folder / "password"
            password_file.write_text(self.password)
            if os.geteuid() == 0:
                shutil.chown(password_file, "postgres")
            self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-U", "fallback", "--auth=md5",
                              f"--pwfile={password_file}", "-E", "UTF8", "--locale=C.UTF-8")
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "30", "-l",
                          str(self.folder / "server.log"), "-o",
                          f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=on", "start")
        return self

    def stop(self) -> None:
        """Stop fast (open sessions are cut)."""
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def restart(self) -> None:
        """Stop then start again on the same port."""
        self.stop()
        self.start()

    def url(self, database: str = "postgres") -> str:
        """A postgresql:// URL for `database`."""
        return f"postgresql://fallback:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        """Stop and remove everything."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def wait_until_reachable(url: str, seconds: float = 15) -> None:
    """Block until PostgreSQL accepts connections at `url` (bounded)."""
    import psycopg

    deadline = time.monotonic() + seconds
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
