"""Shared fixtures: the backend, settings, storage, the app, its test client, the CLI runner, a fixed clock,
and the stand-in main sites.

A test module that sets `BACKENDS = ["sqlite", "postgres"]` runs each of its tests on both
backends; PostgreSQL is a throw-away cluster on 127.0.0.1 (tests/pg.py), one database per test.

Tests that start a server process (`fallback serve`, nginx, HAProxy, PostgreSQL, Chromium, a
container) are marked `slow`; every PostgreSQL variant of a test is slow too, as it needs the
cluster. `pytest -m "not slow"` runs the rest, in well under a minute.
"""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest
from click.testing import CliRunner
from helpers import ADMIN_PASSWORD, FixedClock
from mailserver import FOLLOWUP_DELAY, SMTPServer
from pg import Cluster, binaries
from standin import StandIn

import fallback.storage
from fallback.core.settings import Settings
from fallback.serving.app import create_app
from fallback.storage import open_storage

MAIN_URL = "https://www.example.com"


def pytest_generate_tests(metafunc):
    """Run a module's tests on every backend it lists in BACKENDS (SQLite alone by default); the PostgreSQL
    variants are slow, since each needs the cluster."""
    if "backend" in metafunc.fixturenames:
        backends = getattr(metafunc.module, "BACKENDS", ["sqlite"])
        # A test of one backend's own behaviour runs on that one alone (or is skipped, saying why, if the module
        # does not list it).
        for marker, only in (("sqlite_only", "sqlite"), ("postgres_only", "postgres")):
            if metafunc.definition.get_closest_marker(marker) and only in backends:
                backends = [only]
        metafunc.parametrize("backend", [backend_param(backend) for backend in backends])


def backend_param(backend: str):
    """One value of the `backend` parameter, marked slow when it needs a PostgreSQL server."""
    return pytest.param(backend, marks=pytest.mark.slow) if backend == "postgres" else backend


def pytest_collection_modifyitems(items):
    """A test that asks for the PostgreSQL cluster itself is slow, like the postgres variants."""
    for item in items:
        if "pg_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: starts a server process or PostgreSQL; `pytest -m 'not slow'` runs the rest quickly"
    )
    config.addinivalue_line("markers", "sqlite_only(reason): a test of what only SQLite has (a file, PRAGMAs)")
    config.addinivalue_line("markers", "postgres_only(reason): a test of what only PostgreSQL has (advisory locks)")
    config.addinivalue_line("markers", "slow: starts a server (SMTP, HTTP, PostgreSQL, fallback itself)")


def _is_loopback(host) -> bool:
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True, scope="session")
def _loopback_only():
    """Fail any lookup of a host other than loopback in the test process: tests never leave 127.0.0.1,
    and a redirect followed to the main site by mistake should fail here, not on a DNS timeout."""
    resolve = socket.getaddrinfo

    def loopback_getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            raise OSError(f"tests may only reach loopback, not {host!r}")
        return resolve(host, *args, **kwargs)

    socket.getaddrinfo = loopback_getaddrinfo
    yield
    socket.getaddrinfo = resolve


@pytest.fixture(autouse=True)
def _skip_tests_of_the_other_backend(request):
    callspec = getattr(request.node, "callspec", None)
    backend = callspec.params.get("backend") if callspec else None
    for name, only, label in (("sqlite_only", "sqlite", "SQLite"), ("postgres_only", "postgres", "PostgreSQL")):
        marker = request.node.get_closest_marker(name)
        if marker and backend and backend != only:
            pytest.skip(f"{label} only: {marker.args[0] if marker.args else 'a check of that backend alone'}")


@pytest.fixture(scope="session")
def pg_cluster():
    """One PostgreSQL server for the whole run, stopped at the end."""
    if binaries() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: apt-get install postgresql")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    cluster = Cluster()
    try:
        yield cluster.start()
    finally:
        cluster.destroy()


@pytest.fixture
def database(backend, tmp_path, request, monkeypatch):
    """FALLBACK_DATABASE for this test: a SQLite file, or a new PostgreSQL database, dropped after the test
    (with the pools the test opened on it closed)."""
    if backend == "sqlite":
        yield str(tmp_path / "fallback.db")
        return
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    opened = []
    original = fallback.storage.PostgresStorage.__init__

    def tracked(self, *args, **kwargs):
        original(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(fallback.storage.PostgresStorage, "__init__", tracked)
    yield url
    for storage in opened:
        storage.close()
    cluster.drop_database(url)


@pytest.fixture
def env(database):
    """The environment a test's settings are read from; tests add to it before use."""
    return {
        "FALLBACK_MAIN_URL": MAIN_URL,
        "FALLBACK_DATABASE": database,
        "FALLBACK_SECRET_KEY": "test-secret",
        "FALLBACK_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "FALLBACK_FORM_MIN_SECONDS": "0",
        "FALLBACK_RATE_LIMIT": "0",
    }


@pytest.fixture
def settings(env):
    """Settings built from `env`."""
    return Settings.from_env(env)


@pytest.fixture
def storage(settings):
    """The test database, migrated."""
    return open_storage(settings.database)


@pytest.fixture
def app(settings, storage):
    """The app, as `fallback serve` builds it in each worker."""
    app = create_app(settings, storage)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def down(storage, app):
    """The page forced on."""
    storage.flag.set_mode("down", reason="test")
    app.extensions["fallback"].flag.invalidate()
    return storage


@pytest.fixture
def runner(env, monkeypatch):
    """A CLI runner whose environment is `env`."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return CliRunner()


@pytest.fixture
def clock():
    """A clock standing at 2026-11-28 20:00 UTC until the test moves it (`clock.now += timedelta(...)`)."""
    return FixedClock()


@pytest.fixture
def clocked_storage(database, clock):
    """The test database, migrated, its time read from `clock`."""
    return open_storage(database, clock)


@pytest.fixture
def still_clock(storage, clock):
    """The test database's clock stopped at `clock`. The rate limits count in fixed windows (a minute, 15 minutes,
    aligned); on the real clock a test that crosses a window's end sees its count start again, and a busy machine
    makes a test long enough to cross one."""
    storage.db.clock = clock
    return clock


@pytest.fixture
def site():
    """A stand-in main site of this test's own on 127.0.0.1 (tests/standin.py), healthy until the test says
    otherwise."""
    with StandIn() as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def main_site():
    """One stand-in main site for all of a module's tests, for servers that a module starts once; each test
    finds it listening and healthy (see `_main_site_put_back`)."""
    with StandIn() as stand_in:
        yield stand_in


@pytest.fixture(autouse=True)
def _main_site_put_back(request):
    """Whatever a test did to the module's `main_site` (stopped it, made it fail), the next test finds it
    listening and healthy."""
    if "main_site" not in request.fixturenames:
        yield
        return
    main_site = request.getfixturevalue("main_site")
    heal(main_site)
    yield
    heal(main_site)


def heal(stand_in: StandIn) -> None:
    """A stand-in listening again and answering normally."""
    stand_in.start()
    stand_in.behaviour = "ok"
    stand_in.fail_one_in = 0


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1 (aiosmtpd in this process, tests/mailserver.py) keeping what it accepts."""
    with SMTPServer() as running:
        yield running


@pytest.fixture
def mail_env(env, smtp_server):
    """`env` with follow-up mail on, through `smtp_server`, FOLLOWUP_DELAY seconds after a recovery."""
    env.update(
        {
            "FALLBACK_SMTP_URL": smtp_server.url,
            "FALLBACK_MAIL_FROM": "Shop <news@example.com>",
            "FALLBACK_PUBLIC_URL": "https://sorry.example.com",
            "FALLBACK_FOLLOWUP_DELAY": str(FOLLOWUP_DELAY),
            "FALLBACK_MAIL_RATE": "100/second",
            "FALLBACK_SITE_NAME": "Shop",
        }
    )
    return env


@pytest.fixture
def mail_storage(mail_env, clock):
    """The test database of `mail_env`, migrated, its time read from `clock`."""
    return open_storage(mail_env["FALLBACK_DATABASE"], clock)
