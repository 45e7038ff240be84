"""PostgreSQL's versions of the hardening tests that reach into a SQLite file (test_hardening.py runs
the others on both backends)."""

from __future__ import annotations

import test_hardening
from helpers import contact_fields, form_token, log_in

from fallback.app import create_app
from fallback.config import Settings

BACKENDS = ["postgres"]

post = test_hardening.post


def test_a_token_from_another_installation_on_postgres_is_refused(env, down, client, pg_cluster):
    other = dict(env, FALLBACK_SECRET_KEY="another installation", FALLBACK_DATABASE=pg_cluster.create_database())
    try:
        other_app = create_app(Settings.from_env(other))
        other_app.extensions["fallback"].storage.flag.set_mode("down")
        foreign = form_token(other_app.test_client().get("/").get_data(as_text=True))
        other_app.extensions["fallback"].storage.close()
    finally:
        pg_cluster.drop_database(other["FALLBACK_DATABASE"])
    assert post(client, contact_fields(client, token=foreign)).status_code == 400


def test_raw_client_addresses_are_never_stored_on_postgres(env):
    env["FALLBACK_RATE_LIMIT"] = "100/minute"
    app = create_app(Settings.from_env(env))
    storage = app.extensions["fallback"].storage
    storage.flag.set_mode("down")
    client = app.test_client()
    environ = {"REMOTE_ADDR": "127.42.43.44"}
    page = client.get("/", environ_base=environ).get_data(as_text=True)
    data = {"token": form_token(page), "email": "a@example.org", "consent": "y"}
    assert client.post("/_fallback/contact", data=data, environ_base=environ).status_code == 303
    log_in(client, "wrong")
    tables = [row[0] for row in storage.db.read(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
    assert "rate_limits" in tables and storage.db.read("SELECT COUNT(*) FROM rate_limits")[0][0] == 2
    for table in tables:
        # Every row of every table as text: the address is in none of them.
        assert storage.db.read(f"SELECT COUNT(*) FROM {table} t WHERE t::text LIKE '%127.42.43.44%'")[0][0] == 0
