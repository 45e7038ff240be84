"""PostgreSQL as the scale-out store: outages, start-up errors, moving up from SQLite, two instances."""

from __future__ import annotations

import csv
import io
import time

import pytest
import requests
from click.testing import CliRunner
from helpers import form_token
from served import Served, free_port, run_cli
from standin import StandIn

from fallback.cli import cli
from fallback.storage import NewLead, StorageError, open_storage

BACKENDS = ["postgres"]


def test_an_outage_is_a_storage_error_and_the_pool_reconnects_on_its_own(database, pg_cluster, env):
    from fallback.app import create_app
    from fallback.config import Settings

    app = create_app(Settings.from_env(env))
    storage = app.extensions["fallback"].storage
    storage.set_mode("down")
    client = app.test_client()
    token = form_token(client.get("/").get_data(as_text=True))
    storage.save_lead(NewLead("before@example.org"))
    pg_cluster.stop()
    try:
        with pytest.raises(StorageError):
            storage.save_lead(NewLead("during@example.org"))
        response = client.post("/_fallback/contact", data={"token": token, "email": "visitor@example.org",
                                                           "consent": "y"})
        assert response.status_code == 503 and "not saved" in response.get_data(as_text=True)
        assert client.get("/_fallback/healthz").status_code == 503
    finally:
        pg_cluster.start()
    deadline = time.monotonic() + 20
    while True:
        try:
            storage.save_lead(NewLead("after@example.org"))
            break
        except StorageError:
            assert time.monotonic() < deadline, "the pool did not reconnect within 20 s"
            time.sleep(0.5)
    assert {lead["email"] for lead in storage.iter_leads()} == {"before@example.org", "after@example.org"}


def test_an_unreachable_server_at_start_up_is_named_without_its_password():
    url = f"postgresql://fallback:do-not-print-me@127.0.0.1:{free_port()}/fallback"
    with pytest.raises(StorageError) as raised:
        open_storage(url)
    message = str(raised.value)
    assert "127.0.0.1" in message and "do-not-print-me" not in message and "***" in message


def test_serve_refuses_to_start_on_an_unreachable_database(tmp_path):
    env = {"FALLBACK_MAIN_URL": "http://127.0.0.1:9/",
           "FALLBACK_DATABASE": f"postgresql://fallback:hunter2@127.0.0.1:{free_port()}/fallback"}
    result = run_cli(["serve", "--port", str(free_port())], env, tmp_path, timeout=60)
    assert result.returncode == 2
    assert "cannot connect to the database" in result.stderr and "hunter2" not in result.stderr


def test_migrate_copies_a_sqlite_database_once(database, tmp_path, monkeypatch):
    sqlite_path = str(tmp_path / "old.db")
    old = open_storage(sqlite_path)
    old.save_lead(NewLead("Paul@Example.org", name="Paul", consent=True, consent_version="en-1", consent_text="ok"))
    old.save_lead(NewLead("paul@example.org"))
    old.save_lead(NewLead("bot@example.org", spam_reason="honeypot"))
    old.flip("unknown", "down", "HTTP 503")
    old.set_mode("down", reason="TV", by="cli")
    secret, _ = old.secret_key()
    monkeypatch.setenv("FALLBACK_DATABASE", sqlite_path)
    runner = CliRunner()
    first = runner.invoke(cli, ["migrate", "--to", database])
    assert first.exit_code == 0, first.output
    assert "leads: 2 copied" in first.output and "incidents: 1 copied" in first.output
    second = runner.invoke(cli, ["migrate", "--to", database])
    assert "leads: 0 copied" in second.output and "mode_changes: 0 copied" in second.output
    new = open_storage(database)
    [lead] = list(new.iter_leads())
    assert (lead["email"], lead["name"], lead["submissions"], lead["consent"]) == ("paul@example.org", "Paul", 2, 1)
    assert new.count_leads() == {"leads": 1, "spam": 1}
    assert new.flag().mode == "down" and new.flag().state == "down"
    assert new.secret_key() == (secret, False)


def test_two_instances_share_one_checker_one_flag_and_the_leads(database, tmp_path):
    export_token = "two-instances"
    with StandIn() as site:
        env = {"FALLBACK_MAIN_URL": site.url, "FALLBACK_DATABASE": database, "FALLBACK_RATE_LIMIT": "0",
               "FALLBACK_FORM_MIN_SECONDS": "0", "FALLBACK_CHECK_INTERVAL": "1", "FALLBACK_FALL": "2",
               "FALLBACK_RISE": "2", "FALLBACK_EXPORT_TOKEN": export_token}
        first_dir, second_dir = tmp_path / "a", tmp_path / "b"
        first_dir.mkdir()
        second_dir.mkdir()
        with Served(env, first_dir) as first, Served(env, second_dir) as second:
            time.sleep(3)
            owners = {requests.get(s.url + "/_fallback/status.json", timeout=3).json()["checker"]["owner"]
                      for s in (first, second)}
            assert len(owners) == 1 and None not in owners
            before = site.hits
            time.sleep(5)
            assert site.hits - before <= 7  # one checker at 1 s intervals, not two
            site.behaviour = "error"
            deadline = time.monotonic() + 10
            states = set()
            while time.monotonic() < deadline:
                states = {requests.get(s.url + "/x", allow_redirects=False, timeout=3).status_code
                          for s in (first, second)}
                if states == {503}:
                    break
                time.sleep(0.1)
            assert states == {503}
            for index, server in enumerate((first, second, first, second)):
                page = requests.get(server.url + "/", timeout=3).text
                response = requests.post(server.url + "/_fallback/contact", allow_redirects=False, timeout=10,
                                         data={"token": form_token(page), "email": f"v{index}@example.org",
                                               "consent": "y"})
                assert response.status_code == 303
            export = requests.get(first.url + "/_fallback/admin/export.csv", timeout=10,
                                  headers={"Authorization": f"Bearer {export_token}"})
        emails = [row["email"] for row in csv.DictReader(io.StringIO(export.text, newline=""))]
        assert sorted(emails) == [f"v{index}@example.org" for index in range(4)]
