"""Admin sessions end: log-out and a password change end every session, 8 hours at most, files for the owner only."""

import os
import stat
from datetime import UTC, datetime, timedelta

import pytest
from helpers import FixedClock, csrf_token, log_in

from fallback.core.settings import Settings
from fallback.serving.app import create_app
from fallback.storage import open_storage

BACKENDS = ["sqlite", "postgres"]
COOKIE = "fallback_admin"


def copied_cookie(client) -> str:
    """The admin session cookie as someone copying it from the browser would have it."""
    return client.get_cookie(COOKIE, path="/_fallback/admin").value


def replayed(app, cookie: str) -> bool:
    """Whether a stranger holding `cookie` gets the dashboard from `app`."""
    stranger = app.test_client()
    stranger.set_cookie(COOKIE, cookie, path="/_fallback/admin")
    return "Set mode" in stranger.get("/_fallback/admin").get_data(as_text=True)


def log_out(client):
    html = client.get("/_fallback/admin").get_data(as_text=True)
    return client.post("/_fallback/admin/logout", data={"csrf_token": csrf_token(html)})


def test_a_cookie_copied_before_log_out_no_longer_opens_the_dashboard(app, client):
    log_in(client)
    client.get("/_fallback/admin")
    cookie = copied_cookie(client)
    assert replayed(app, cookie)
    log_out(client)
    assert not replayed(app, cookie)


def test_log_out_on_one_instance_ends_the_session_on_every_other(app, client, env):
    log_in(client)
    cookie = copied_cookie(client)
    other = create_app(Settings.from_env(env))
    assert replayed(other, cookie)
    other_client = other.test_client()
    other_client.set_cookie(COOKIE, cookie, path="/_fallback/admin")
    log_out(other_client)
    assert not replayed(app, cookie)  # at once: no cache of the generation to wait out
    assert not replayed(other, cookie)


def test_logging_out_without_a_session_ends_no_one_elses(app, client):
    log_in(client)
    cookie = copied_cookie(client)
    log_out(app.test_client())
    assert replayed(app, cookie)


def test_a_new_admin_password_ends_every_session(app, client, env):
    log_in(client)
    cookie = copied_cookie(client)
    env["FALLBACK_ADMIN_PASSWORD"] = "a brand new passphrase"
    restarted = create_app(Settings.from_env(env))
    assert not replayed(restarted, cookie)
    fresh = restarted.test_client()
    assert log_in(fresh, "a brand new passphrase").status_code == 303
    assert "Set mode" in fresh.get("/_fallback/admin").get_data(as_text=True)


def test_a_session_lasts_eight_hours_at_most_however_active(app, client, storage):
    clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    storage.db.clock = clock
    log_in(client)
    start = clock.now
    for minutes in range(59, 8 * 60, 60):  # an admin busy all day
        clock.now = start + timedelta(minutes=minutes)
        assert "Set mode" in client.get("/_fallback/admin").get_data(as_text=True)
    clock.now = start + timedelta(hours=8, seconds=1)
    assert 'type="password"' in client.get("/_fallback/admin").get_data(as_text=True)


def test_the_cookie_expires_eight_hours_after_log_in_not_after_the_last_request(app, client, storage):
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(now - timedelta(hours=3))
    storage.db.clock = clock
    log_in(client)  # three hours ago
    clock.now = now
    assert "Set mode" in client.get("/_fallback/admin").get_data(as_text=True)
    expires = client.get_cookie(COOKIE, path="/_fallback/admin").expires
    assert expires <= now + timedelta(hours=5, seconds=1)


@pytest.mark.sqlite_only("file modes")
def test_database_files_are_created_for_their_owner_only(tmp_path):
    path = str(tmp_path / "fallback.db")
    previous = os.umask(0o022)
    try:
        storage = open_storage(path)
        storage.check_writable()
        storage.secret_key()
    finally:
        os.umask(previous)
    for name in (path, path + "-wal", path + "-shm", path + "-writer.lock"):
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o600, name
    storage.close()


@pytest.mark.sqlite_only("file modes")
def test_a_database_file_readable_by_others_is_tightened_when_opened(tmp_path):
    path = str(tmp_path / "fallback.db")
    open_storage(path).close()
    for name in (path, path + "-wal", path + "-shm"):
        if os.path.exists(name):
            os.chmod(name, 0o644)
    storage = open_storage(path)
    storage.check_writable()
    for name in (path, path + "-wal", path + "-shm"):
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o600, name
    storage.close()


@pytest.mark.sqlite_only("POSIX locks on the file")
def test_opening_another_connection_keeps_the_locks_of_those_open(tmp_path):
    import subprocess
    import sys

    from fallback.storage import NewLead

    path = str(tmp_path / "fallback.db")
    storage = open_storage(path)
    storage.leads.save(NewLead("paul@example.org"))
    assert len(list(storage.leads.iter())) == 1  # on a connection of its own, opened then closed
    # Another process (a CLI command) that believes its connection is the last one deletes -wal and -shm.
    reader = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('SELECT 1 FROM meta'); c.close()"
    subprocess.run([sys.executable, "-c", reader, path], check=True, timeout=30)
    storage.leads.save(NewLead("anna@example.org"))
    assert len(list(storage.leads.iter())) == 2
    storage.close()


def test_an_admin_page_answers_503_not_500_while_the_database_is_unreachable(env, storage, monkeypatch):
    from fallback.storage import StorageError

    reachable = [True]
    read = storage.session_generation

    def generation():
        if not reachable[0]:
            raise StorageError("the database is unreachable")
        return read()

    monkeypatch.setattr(storage, "session_generation", generation)
    app = create_app(Settings.from_env(env), storage)
    client = app.test_client()
    log_in(client)
    reachable[0] = False
    response = client.get("/_fallback/admin")
    assert response.status_code == 503 and "unavailable" in response.get_data(as_text=True)
