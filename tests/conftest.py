"""Shared fixtures: settings, storage, the app, its test client, the CLI runner."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fallback.app import create_app
from fallback.config import Settings
from fallback.storage import open_storage

MAIN_URL = "https://www.example.com"


@pytest.fixture
def env(tmp_path):
    """The environment a test's settings are read from; tests add to it before use."""
    return {
        "FALLBACK_MAIN_URL": MAIN_URL,
        "FALLBACK_DATABASE": str(tmp_path / "fallback.db"),
        "FALLBACK_SECRET_KEY": "test-secret",
        "FALLBACK_ADMIN_PASSWORD": "correct horse",
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
    storage.set_mode("down", reason="test")
    app.extensions["fallback"].flag.invalidate()
    return storage


@pytest.fixture
def runner(env, monkeypatch):
    """A CLI runner whose environment is `env`."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return CliRunner()
