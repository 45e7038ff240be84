"""PostgreSQL as the scale-out store: outages and restarts, start-up errors, the same schema as SQLite,
moving up from SQLite, erasure, and two `fallback serve` instances sharing one database."""

from __future__ import annotations

import csv
import io
import sqlite3
import time

import pytest
import requests
from click.testing import CliRunner
from helpers import ADMIN_PASSWORD, admin_status, form_token
from procs import free_port
from schema_shape import postgres_shape, sqlite_shape
from served import Served, run_cli
from standin import StandIn

from fallback.cli import cli
from fallback.core.settings import Settings
from fallback.serving.app import create_app
from fallback.storage import MIGRATIONS, NewLead, StorageError, open_storage
from fallback.storage.postgres_migrations import PG_MIGRATIONS
from fallback.storage.postgres_url import safe_url
from fallback.storage.records import LeadCounts

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

BACKENDS = ["postgres"]


def retry_until_saved(storage, email: str, seconds: float = 15) -> float:
    """Save a lead, retrying while the database is unreachable (bounded); seconds it took."""
    started = time.monotonic()
    while True:
        try:
            storage.leads.save(NewLead(email))
            return time.monotonic() - started
        except StorageError:
            assert time.monotonic() - started < seconds, f"no write succeeded within {seconds} s"
            time.sleep(0.2)


def timed(call):
    """`call()`'s result and how many seconds it took."""
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_an_outage_fails_fast_serves_visitors_and_the_pool_reconnects_on_its_own(database, pg_cluster, env, caplog):
    app = create_app(Settings.from_env(env))
    storage = app.extensions["fallback"].storage
    storage.flag.set_mode("down", reason="TV")
    client = app.test_client()
    token = form_token(client.get("/").get_data(as_text=True))
    storage.leads.save(NewLead("before@example.org"))
    pg_cluster.stop()
    try:
        with pytest.raises(StorageError, match="unreachable|failed"):
            storage.leads.save(NewLead("during@example.org"))
        # The visitor is never thanked for a lead that was not stored: the 'not saved' page, quickly.
        response, seconds = timed(
            lambda: client.post(
                "/_fallback/contact", data={"token": token, "email": "visitor@example.org", "consent": "y"}
            )
        )
        assert response.status_code == 503 and "not saved" in response.get_data(as_text=True)
        assert seconds < 5
        # Visitors keep getting the page: the flag last read is used while it cannot be read.
        time.sleep(0.6)  # past the flag cache's lifetime
        page, seconds = timed(lambda: client.get("/some/path"))
        assert page.status_code == 503 and 'name="email"' in page.get_data(as_text=True) and seconds < 5
        health, seconds = timed(lambda: client.get("/_fallback/healthz"))
        # One word in public; the details, without the password, in the log.
        assert health.status_code == 503 and health.get_data(as_text=True) == "database\n" and seconds < 5
        assert "healthz failing (database): the database is unreachable" in caplog.text
        assert pg_cluster.password not in caplog.text
    finally:
        pg_cluster.start()
    # The same app, not restarted: writes succeed again within seconds.
    assert retry_until_saved(storage, "after@example.org") < 10
    # No checker runs here, so healthz still fails, but no longer for the database.
    assert client.get("/_fallback/healthz").get_data(as_text=True) == "checker\n"
    assert {lead["email"] for lead in storage.leads.iter()} == {"before@example.org", "after@example.org"}


def test_a_restart_between_requests_costs_no_failed_write(database, pg_cluster):
    storage = open_storage(database)
    storage.leads.save(NewLead("before@example.org"))
    assert storage.flag.read().mode == "auto"
    pg_cluster.restart()
    # The pooled connections the server hung up on are found dead and replaced before use.
    storage.leads.save(NewLead("after@example.org"))
    assert storage.flag.read().mode == "auto"
    assert storage.leads.count() == LeadCounts(leads=2, spam=0)


def refuse_writes(cluster, url: str, refuse: bool = True) -> None:
    """Make the database of `url` read-only, as a replica is after a fail-over; sessions are cut to apply it."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        setting = "SET default_transaction_read_only = on" if refuse else "RESET default_transaction_read_only"
        conn.execute(f'ALTER DATABASE "{name}" {setting}')
        # Waits (up to 5 s) until each session is gone, so that no test races the termination.
        conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = %s", (name,))


def test_a_refused_write_gives_a_storage_error_and_keeps_what_was_stored(database, pg_cluster):
    storage = open_storage(database)
    storage.leads.save(NewLead("kept@example.org"))
    refuse_writes(pg_cluster, database)
    with pytest.raises(StorageError, match="read-only"):
        storage.leads.save(NewLead("refused@example.org"))
    with pytest.raises(StorageError, match="read-only"):
        storage.check_writable()
    assert [lead["email"] for lead in storage.leads.iter()] == ["kept@example.org"]
    refuse_writes(pg_cluster, database, False)
    storage.leads.save(NewLead("later@example.org"))
    assert storage.leads.count().leads == 2


def test_a_lead_the_database_refuses_is_not_thanked(database, pg_cluster, env):
    app = create_app(Settings.from_env(env))
    storage = app.extensions["fallback"].storage
    storage.flag.set_mode("down")
    client = app.test_client()
    token = form_token(client.get("/").get_data(as_text=True))
    refuse_writes(pg_cluster, database)
    response = client.post("/_fallback/contact", data={"token": token, "email": "paul@example.org", "consent": "y"})
    assert response.status_code == 503 and "not saved" in response.get_data(as_text=True)
    assert client.get("/_fallback/healthz").status_code == 503
    assert list(storage.leads.iter()) == []


def test_an_unreachable_server_at_start_up_is_named_without_its_password():
    url = f"postgresql://fallback:do-not-print-me@127.0.0.1:{free_port()}/fallback"
    with pytest.raises(StorageError) as raised:
        timed(lambda: open_storage(url))
    message = str(raised.value)
    assert "127.0.0.1" in message and "refused" in message
    assert "do-not-print-me" not in message and "***" in message


def test_a_wrong_password_is_named_as_such_without_either_password(pg_cluster):
    url = pg_cluster.url("postgres", password="not-the-password")
    with pytest.raises(StorageError) as raised:
        open_storage(url)
    message = str(raised.value)
    assert "password authentication failed" in message
    assert "not-the-password" not in message and pg_cluster.password not in message


def test_passwords_are_hidden_in_urls():
    assert safe_url("postgresql://me:s3cr%40t@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert safe_url("postgresql://db/x?user=me&password=s3cret") == "postgresql://db/x?user=me&password=***"
    assert safe_url("postgresql://me@db/x") == "postgresql://me@db/x"


def test_serve_refuses_to_start_on_an_unreachable_database(tmp_path):
    env = {
        "FALLBACK_MAIN_URL": "http://127.0.0.1:9/",
        "FALLBACK_DATABASE": f"postgresql://fallback:hunter2@127.0.0.1:{free_port()}/fallback",
    }
    result = run_cli(["serve", "--port", str(free_port())], env, tmp_path, timeout=60)
    assert result.returncode == 2
    assert "cannot connect to the database" in result.stderr and "hunter2" not in result.stderr


def test_both_backends_have_the_same_tables_columns_types_defaults_keys_and_indexes(database, tmp_path):
    sqlite_db = open_storage(str(tmp_path / "schema.db"))
    postgres = open_storage(database)
    assert len(PG_MIGRATIONS) == len(MIGRATIONS) == postgres.migrate() == sqlite_db.migrate()
    sqlite, pg = sqlite_shape(sqlite_db), postgres_shape(postgres)
    assert sorted(sqlite) == sorted(pg)
    for table in sqlite:
        assert sqlite[table] == pg[table], table


def test_the_message_each_lead_of_a_version_4_database_holds_becomes_its_first_submission(database):
    import psycopg

    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("CREATE TABLE meta (key text PRIMARY KEY, value text)")
        for statement in [statement for step in PG_MIGRATIONS[:4] for statement in step]:
            conn.execute(statement)
        conn.execute("INSERT INTO meta VALUES ('schema_version', '4')")
        conn.execute(
            "INSERT INTO leads (email, email_key, name, message, created_at, updated_at, submissions) "
            "VALUES ('old@example.org', 'old@example.org', 'Old', 'call me', '2026-01-01', '2026-01-02', 2)"
        )
    [lead] = open_storage(database).leads.iter()
    assert lead["messages"] == [{"at": "2026-01-02", "name": "Old", "message": "call me"}]


def test_forget_and_purge_leave_no_row_and_vacuum_the_table(database):
    storage = open_storage(database)
    storage.leads.save(NewLead("Secret.Person@Example.org", message="a distinctive message"))
    storage.leads.save(NewLead("secret.person@example.org", spam_reason="honeypot"))
    storage.leads.save(NewLead("other@example.org"))

    def vacuums() -> int:
        return storage.db.read("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'leads'")[0][0]

    before = vacuums()
    assert storage.leads.forget("SECRET.PERSON@example.org") == 2
    assert (
        storage.db.read(
            "SELECT (SELECT COUNT(*) FROM submissions WHERE message LIKE '%distinctive%') "
            "+ (SELECT COUNT(*) FROM leads WHERE email_key = 'secret.person@example.org')"
        )[0][0]
        == 0
    )
    assert vacuums() == before + 1
    assert storage.leads.purge(storage.clock()) == 1
    assert storage.db.read("SELECT COUNT(*) FROM leads")[0][0] == 0
    assert vacuums() == before + 2


def test_migrate_copies_a_sqlite_database_once(database, tmp_path, monkeypatch):
    sqlite_path = str(tmp_path / "old.db")
    old = open_storage(sqlite_path)
    old.leads.save(
        NewLead(
            "Paul@Example.org", name="Paul", message="first", consent=True, consent_version="en-1", consent_text="ok"
        )
    )
    old.leads.save(NewLead("paul@example.org", message="second"))
    old.leads.save(NewLead("bot@example.org", spam_reason="honeypot"))
    old.leads.save(NewLead("bot@example.org", spam_reason="too fast"))
    old.flag.flip("unknown", "down", "HTTP 503")
    old.flag.set_mode("down", reason="TV", by="cli")
    secret, _ = old.secret_key()
    old_events = [(e.at, e.type, e.data) for e in old.events.recent() if e.lead_id is None]  # no lead.created
    monkeypatch.setenv("FALLBACK_DATABASE", sqlite_path)
    runner = CliRunner()
    first = runner.invoke(cli, ["migrate", "--to", database])
    assert first.exit_code == 0, first.output
    for line in (
        "leads: 3 copied, 0 already there",
        "submissions: 4 copied, 0 already there",
        "incidents: 1 copied",
        f"events: {len(old_events)} copied",
        "flag: copied",
        "secret key: copied",
    ):
        assert line in first.output
    assert database.split("@")[0].split(":")[-1] not in first.output  # the password
    second = runner.invoke(cli, ["migrate", "--to", database])
    assert second.exit_code == 0, second.output
    for line in (
        "leads: 0 copied, 3 already there",
        "submissions: 0 copied, 4 already there",
        "incidents: 0 copied, 1 already there",
        "events: 0 copied",
        "flag: kept",
        "secret key: kept",
    ):
        assert line in second.output
    new = open_storage(database)
    [lead] = list(new.leads.iter())
    assert (lead["email"], lead["name"], lead["submissions"], lead["consent"]) == ("Paul@Example.org", "Paul", 2, 1)
    assert lead["consent_text"] == "ok" and lead["created_at"] < lead["updated_at"]
    assert [sent["message"] for sent in lead["messages"]] == ["first", "second"]
    assert new.leads.count() == LeadCounts(leads=1, spam=2)
    assert new.flag.read().mode == "down" and new.flag.read().state == "down" and new.flag.read().mode_reason == "TV"
    assert [(i.started_at, i.reason) for i in new.flag.incidents()] == [
        (i.started_at, i.reason) for i in old.flag.incidents()
    ]
    assert [(c.at, c.mode, c.by) for c in new.flag.mode_changes()] == [
        (c.at, c.mode, c.by) for c in old.flag.mode_changes()
    ]
    assert [(e.at, e.type, e.data) for e in new.events.recent()] == old_events
    assert new.secret_key() == (secret, False)
    # What PostgreSQL received since is kept: a new lead there, then one more SQLite lead copied.
    new.leads.save(NewLead("paul@example.org", name="Paul again"))
    old.leads.save(NewLead("late@example.org"))
    third = runner.invoke(cli, ["migrate", "--to", database])
    assert "leads: 1 copied, 3 already there" in third.output and "submissions: 1 copied, 4 already" in third.output
    assert {lead["email"]: [sent["name"] for sent in lead["messages"]] for lead in new.leads.iter()} == {
        "Paul@Example.org": ["Paul", "", "Paul again"],
        "late@example.org": [""],
    }


def test_migrate_refuses_what_cannot_work(database, tmp_path, monkeypatch):
    runner = CliRunner()
    monkeypatch.setenv("FALLBACK_DATABASE", str(tmp_path / "missing.db"))
    result = runner.invoke(cli, ["migrate", "--to", database])
    assert result.exit_code == 2 and "no SQLite database at" in result.output
    assert not (tmp_path / "missing.db").exists()
    sqlite3.connect(tmp_path / "present.db").close()
    monkeypatch.setenv("FALLBACK_DATABASE", str(tmp_path / "present.db"))
    result = runner.invoke(cli, ["migrate", "--to", str(tmp_path / "other.db")])
    assert result.exit_code == 2 and "expected a postgresql:// URL" in result.output
    monkeypatch.setenv("FALLBACK_DATABASE", database)
    result = runner.invoke(cli, ["migrate", "--to", database])
    assert result.exit_code == 2 and "already PostgreSQL" in result.output


def test_two_instances_share_one_checker_one_flag_and_the_leads(database, tmp_path):
    export_token = "two-instances-export-token"
    with StandIn() as site:
        env = {
            "FALLBACK_MAIN_URL": site.url,
            "FALLBACK_CHECK_URLS": site.url,
            "FALLBACK_DATABASE": database,
            "FALLBACK_RATE_LIMIT": "0",
            "FALLBACK_FORM_MIN_SECONDS": "0",
            "FALLBACK_CHECK_INTERVAL": "1",
            "FALLBACK_FALL": "2",
            "FALLBACK_RISE": "2",
            "FALLBACK_EXPORT_TOKEN": export_token,
            "FALLBACK_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
        first_dir, second_dir = tmp_path / "a", tmp_path / "b"
        first_dir.mkdir()
        second_dir.mkdir()
        with Served(env, first_dir) as first, Served(env, second_dir) as second:
            time.sleep(3)
            owners = {admin_status(s.url)["checker"]["owner"] for s in (first, second)}
            assert len(owners) == 1 and None not in owners
            before = site.hits
            time.sleep(5)
            # One checker at 1 s intervals probes about 5 times in 5 s; two would probe about 10 times.
            assert 3 <= site.hits - before <= 7
            site.behaviour = "error"
            deadline = time.monotonic() + 10
            states = set()
            while time.monotonic() < deadline:
                states = {
                    requests.get(s.url + "/x", allow_redirects=False, timeout=3).status_code for s in (first, second)
                }
                if states == {503}:
                    break
                time.sleep(0.1)
            assert states == {503}
            time.sleep(1)  # every worker of both (two each) re-reads the flag within half a second
            documents = [requests.get(s.url + "/_fallback/status.json", timeout=3).json() for s in (first, second)]
            assert {d["state"] for d in documents} == {"down"}
            assert documents[0]["since"] == documents[1]["since"]  # one flip, seen by both
            for index, server in enumerate((first, second, first, second)):
                page = requests.get(server.url + "/", allow_redirects=False, timeout=3)
                assert page.status_code == 503
                response = requests.post(
                    server.url + "/_fallback/contact",
                    allow_redirects=False,
                    timeout=10,
                    data={"token": form_token(page.text), "email": f"v{index}@example.org", "consent": "y"},
                )
                assert response.status_code == 303
            exports = [
                requests.get(
                    s.url + "/_fallback/admin/export.csv",
                    timeout=10,
                    headers={"Authorization": f"Bearer {export_token}"},
                )
                for s in (first, second)
            ]
        for export in exports:
            emails = [row["email"] for row in csv.DictReader(io.StringIO(export.text, newline=""))]
            assert sorted(emails) == [f"v{index}@example.org" for index in range(4)]
    assert len(open_storage(database).flag.incidents()) == 1


def test_each_workers_pool_has_room_for_its_request_threads_and_the_background_ones(env):
    app = create_app(Settings.from_env(env), threads=20)
    assert app.extensions["fallback"].storage.db.pool.max_size == 20 + 4
