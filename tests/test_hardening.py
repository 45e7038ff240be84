"""Hostile input, abuse, and faults: always a clear 4xx or a 503 that says so, never a 5xx crash, nothing lost."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time

import pytest
from helpers import ADMIN_PASSWORD, contact_fields, csrf_token, form_token, log_in, refuse_writes

from fallback.core.settings import Settings
from fallback.serving.app import create_app
from fallback.storage import open_storage

# Each test that uses the database runs on both; the few that reach into a SQLite file have a PostgreSQL
# twin beside them (postgres_only).
BACKENDS = ["sqlite", "postgres"]


def post(client, data, **kwargs):
    return client.post("/_fallback/contact", data=data, **kwargs)


# -- input ----------------------------------------------------------------------------


def test_a_body_over_64_kb_is_a_413(client, down):
    response = post(client, contact_fields(client, message="x" * 70_000))
    assert response.status_code == 413


def test_a_non_utf8_body_is_a_400(client, down):
    token = form_token(client.get("/").get_data(as_text=True))
    body = b"email=\xff\xfe%ff@example.org&consent=y&token=" + token.encode()
    response = post(client, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/xml"])
def test_a_wrong_content_type_is_a_400(client, down, content_type):
    response = post(client, b'{"email": "a@example.org"}', content_type=content_type)
    assert response.status_code == 400


def test_missing_fields_are_a_400(client, down):
    assert post(client, {}).status_code == 400


def test_duplicated_fields_use_the_first_value(client, down, storage):
    data = contact_fields(client)
    data["email"] = ["first@example.org", "second@example.org"]
    assert post(client, data).status_code == 303
    assert [lead["email"] for lead in storage.leads.iter()] == ["first@example.org"]


@pytest.mark.parametrize("field", ["email", "name", "path"])
def test_control_characters_are_refused(client, down, storage, field):
    value = {"email": "a\x00b@example.org", "name": "Paul\x1b[31m", "path": "/a\r\nSet-Cookie: x"}[field]
    assert post(client, contact_fields(client, **{field: value})).status_code == 400
    assert list(storage.leads.iter()) == []


def test_a_message_keeps_its_line_breaks(client, down, storage):
    assert post(client, contact_fields(client, message="line one\r\nline two\ttabbed")).status_code == 303
    assert next(storage.leads.iter())["messages"][0]["message"] == "line one\r\nline two\ttabbed"


@pytest.fixture
def another_database(backend, env, request):
    """A second, empty database of the same backend: a file beside the first, or one more on the cluster."""
    if backend == "sqlite":
        yield env["FALLBACK_DATABASE"] + "2"
        return
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    yield url
    cluster.drop_database(url)


def test_a_token_from_another_installation_is_refused(env, down, client, another_database):
    other = dict(env, FALLBACK_SECRET_KEY="another installation", FALLBACK_DATABASE=another_database)
    other_app = create_app(Settings.from_env(other))
    other_app.extensions["fallback"].storage.flag.set_mode("down")
    foreign = form_token(other_app.test_client().get("/").get_data(as_text=True))
    other_app.extensions["fallback"].storage.close()
    assert post(client, contact_fields(client, token=foreign)).status_code == 400


# -- abuse ----------------------------------------------------------------------------------


@pytest.fixture
def limited(env, clock):
    """An app limiting contact posts and log-ins to 3 a minute, its database's clock stopped (see still_clock)."""
    env["FALLBACK_RATE_LIMIT"] = "3/minute"
    app = create_app(Settings.from_env(env), open_storage(env["FALLBACK_DATABASE"], clock))
    app.extensions["fallback"].storage.flag.set_mode("down")
    return app


def test_past_the_rate_limit_a_visitor_gets_429_with_input_kept(limited):
    client = limited.test_client()
    for _ in range(3):
        assert post(client, contact_fields(client)).status_code == 303
    response = post(client, contact_fields(client, name="Paul Keep"))
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    html = response.get_data(as_text=True)
    assert 'value="Paul Keep"' in html and "Please wait" in html
    assert limited.extensions["fallback"].storage.leads.count().leads == 1


def test_invalid_posts_count_against_the_limit_too(limited):
    client = limited.test_client()
    for _ in range(3):
        assert post(client, {}).status_code == 400
    assert post(client, contact_fields(client)).status_code == 429


def test_the_limit_is_shared_by_every_process_on_the_database(env, limited, clock):
    other = create_app(Settings.from_env(env), open_storage(env["FALLBACK_DATABASE"], clock))
    first, second = limited.test_client(), other.test_client()
    for client in (first, second, first):
        assert post(client, contact_fields(client)).status_code == 303
    assert post(second, contact_fields(second)).status_code == 429


def test_admin_log_ins_are_rate_limited(limited):
    client = limited.test_client()
    for _ in range(3):
        assert log_in(client, "wrong").status_code == 401
    response = log_in(client, ADMIN_PASSWORD)
    assert response.status_code == 429 and "Retry-After" in response.headers


def test_forwarded_addresses_are_ignored_without_trusted_proxies(limited):
    client = limited.test_client()
    for n in range(4):
        response = post(client, contact_fields(client), headers={"X-Forwarded-For": f"127.0.0.{n + 10}"})
    assert response.status_code == 429


def test_forwarded_addresses_count_with_one_trusted_proxy(env):
    env.update(FALLBACK_RATE_LIMIT="3/minute", FALLBACK_TRUSTED_PROXIES="1")
    app = create_app(Settings.from_env(env))
    app.extensions["fallback"].storage.flag.set_mode("down")
    client = app.test_client()
    statuses = [
        post(client, contact_fields(client), headers={"X-Forwarded-For": f"127.0.0.{n + 10}"}).status_code
        for n in range(5)
    ]
    assert statuses == [303] * 5


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ],
)
def test_cross_site_posts_are_refused(client, down, storage, headers):
    assert post(client, contact_fields(client), headers=headers).status_code == 403
    assert list(storage.leads.iter()) == []


def test_same_origin_posts_are_accepted(client, down):
    headers = {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}
    assert post(client, contact_fields(client), headers=headers).status_code == 303


def test_cross_site_admin_posts_are_refused(client):
    page = client.get("/_fallback/admin").get_data(as_text=True)
    response = client.post(
        "/_fallback/admin/login",
        data={"password": ADMIN_PASSWORD, "csrf_token": csrf_token(page)},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403


def test_public_pages_and_the_thank_you_never_set_cookies(client, down):
    for response in (
        client.get("/"),
        post(client, contact_fields(client)),
        client.get("/_fallback/thanks"),
        post(client, {}),
    ):
        assert "Set-Cookie" not in response.headers


# -- headers and secrets ---------------------------------------------------------------------


def test_hsts_and_a_secure_admin_cookie_over_https(app):
    client = app.test_client()
    page = client.get("/_fallback/admin", base_url="https://fallback.test")
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    response = client.post(
        "/_fallback/admin/login",
        base_url="https://fallback.test",
        data={"password": ADMIN_PASSWORD, "csrf_token": csrf_token(page.get_data(as_text=True))},
    )
    assert "Secure" in response.headers["Set-Cookie"]


def test_no_hsts_over_plain_http(client):
    assert "Strict-Transport-Security" not in client.get("/").headers


def test_https_behind_a_trusted_proxy_counts_as_https(env):
    env["FALLBACK_TRUSTED_PROXIES"] = "1"
    client = create_app(Settings.from_env(env)).test_client()
    response = client.get("/_fallback/admin", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in response.headers


def test_nothing_secret_reaches_the_logs(env, caplog):
    env["FALLBACK_EXPORT_TOKEN"] = "export-token-value-0123456789"
    with caplog.at_level("DEBUG"):
        app = create_app(Settings.from_env(env))
        client = app.test_client()
        log_in(client, "a guessed password")
        client.get("/_fallback/admin/export.csv", headers={"Authorization": "Bearer wrong-token-guess"})
    assert "wrong admin password from" in caplog.text and "wrong token from" in caplog.text
    for secret in (
        "a guessed password",
        ADMIN_PASSWORD,
        "test-secret",
        "export-token-value-0123456789",
        "wrong-token-guess",
    ):
        assert secret not in caplog.text


def visit_and_submit_from(app, address: str) -> None:
    """A page view, an accepted submission and a failed admin log-in, all from `address`."""
    app.extensions["fallback"].storage.flag.set_mode("down")
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    page = client.get("/").get_data(as_text=True)
    data = {"token": form_token(page), "email": "a@example.org", "consent": "y"}
    assert client.post("/_fallback/contact", data=data).status_code == 303
    assert log_in(client, "wrong").status_code == 401


@pytest.mark.sqlite_only("reads the file's bytes")
def test_raw_client_addresses_are_never_stored(env, tmp_path):
    env["FALLBACK_RATE_LIMIT"] = "100/minute"
    app = create_app(Settings.from_env(env))
    visit_and_submit_from(app, "127.42.43.44")
    app.extensions["fallback"].storage.close()
    for path in tmp_path.glob("fallback.db*"):
        assert b"127.42.43.44" not in path.read_bytes()


@pytest.mark.postgres_only("reads every row of every table")
def test_raw_client_addresses_are_never_stored_on_postgres(env):
    import psycopg

    env["FALLBACK_RATE_LIMIT"] = "100/minute"
    visit_and_submit_from(create_app(Settings.from_env(env)), "127.42.43.44")
    # A connection of our own, not the app's storage: the rows as they are on the server.
    with psycopg.connect(env["FALLBACK_DATABASE"], connect_timeout=10) as conn:
        tables = [
            row[0]
            for row in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        ]
        # The contact form's counter and the log-in's (a few: per address, per group, global): none names it.
        assert "rate_limits" in tables and conn.execute("SELECT COUNT(*) FROM rate_limits").fetchone()[0] >= 2
        for table in tables:
            # Every row of every table as text: the address is in none of them.
            count = conn.execute(f"SELECT COUNT(*) FROM {table} t WHERE t::text LIKE '%127.42.43.44%'").fetchone()[0]
            assert count == 0, table


# -- faults -----------------------------------------------------------------------------------


@contextlib.contextmanager
def another_writer_holding_the_lock(backend: str, database: str):
    """A second connection holding the write lock: SQLite's BEGIN IMMEDIATE, or an exclusive lock on
    PostgreSQL's leads table."""
    if backend == "sqlite":
        blocker = sqlite3.connect(database, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            blocker.execute("COMMIT")
            blocker.close()
    else:
        import psycopg

        with psycopg.connect(database, autocommit=True) as blocker:
            blocker.execute("BEGIN")
            blocker.execute("LOCK TABLE leads IN EXCLUSIVE MODE")
            yield
            blocker.execute("COMMIT")


def test_a_submission_waits_for_another_writer_to_finish(client, down, storage, backend, database):
    data = contact_fields(client)
    result = {}

    def send():
        started = time.monotonic()
        result["status"] = post(client, data).status_code
        result["waited"] = time.monotonic() - started

    with another_writer_holding_the_lock(backend, database):
        thread = threading.Thread(target=send)
        thread.start()
        time.sleep(2.0)  # the other writer holds the lock for two seconds
    thread.join(15)
    assert result["status"] == 303 and result["waited"] >= 1.9
    assert len(list(storage.leads.iter())) == 1


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB file system, to fill up for real; skipped where mounting is not allowed."""
    import subprocess

    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.sqlite_only("a file on a tiny tmpfs")
def test_a_full_disk_gets_a_not_saved_page_and_keeps_what_was_stored(env, tiny_disk):
    env.update(FALLBACK_DATABASE=str(tiny_disk / "fallback.db"), FALLBACK_CONTACT_EMAIL="help@example.org")
    app = create_app(Settings.from_env(env))
    storage = app.extensions["fallback"].storage
    storage.flag.set_mode("down")
    storage.checker.claim("test", 60)
    storage.checker.record_round("test", [], network_doubt=False, note=None)
    client = app.test_client()
    assert post(client, contact_fields(client, email="kept@example.org")).status_code == 303
    filler = tiny_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass  # the disk is full
    finally:
        os.close(fd)
    statuses = [
        post(client, contact_fields(client, email=f"v{n}@example.org", message="m" * 1500)).status_code
        for n in range(40)
    ]
    assert 503 in statuses and all(status in (303, 503) for status in statuses)
    refused = post(client, contact_fields(client, email="late@example.org", message="m" * 1500))
    assert refused.status_code == 503
    html = refused.get_data(as_text=True)
    assert "not saved" in html and "help@example.org" in html
    assert client.get("/_fallback/healthz").status_code == 503
    filler.unlink()
    acknowledged = {"kept@example.org"} | {f"v{n}@example.org" for n, status in enumerate(statuses) if status == 303}
    assert {lead["email"] for lead in storage.leads.iter()} == acknowledged
    assert client.get("/_fallback/healthz").status_code == 200


@pytest.mark.sqlite_only("PRAGMA query_only")
def test_a_read_only_database_gets_a_not_saved_page_and_a_failing_healthz(client, down, storage):
    data = contact_fields(client)
    # The same SQLITE_READONLY refusal a read-only file or volume gives, on the connection the view uses.
    refuse_writes(storage)
    try:
        response = post(client, data)
        assert response.status_code == 503 and "not saved" in response.get_data(as_text=True)
        assert client.get("/_fallback/healthz").status_code == 503
        assert client.get("/").status_code == 503  # the page itself is still served
    finally:
        refuse_writes(storage, False)
    assert list(storage.leads.iter()) == []


def test_an_https_public_url_means_hsts_and_secure_cookies_whatever_the_hops(env):
    env["FALLBACK_PUBLIC_URL"] = "https://sorry.example.com"
    app = create_app(Settings.from_env(env))
    client = app.test_client()  # plain HTTP: a proxy that terminates TLS and is not trusted
    redirect = client.get("/pricing")
    assert redirect.status_code == 302
    app.extensions["fallback"].storage.flag.set_mode("down")
    app.extensions["fallback"].flag.invalidate()
    client.get("/")  # renders the page once; from then on the fast path serves it
    page = client.get("/")
    thanks = post(client, contact_fields(client))
    assert thanks.status_code == 303
    admin = client.get("/_fallback/admin")
    for response in (redirect, page, thanks, admin, client.get("/_fallback/status.json")):
        assert response.headers.get("Strict-Transport-Security", "").startswith("max-age="), response.request.path
    logged_in = log_in(client)
    assert "Secure" in logged_in.headers["Set-Cookie"]
    assert "Strict-Transport-Security" in logged_in.headers


def test_an_http_public_url_sends_no_hsts(env):
    env["FALLBACK_PUBLIC_URL"] = "http://sorry.example.com"
    client = create_app(Settings.from_env(env)).test_client()
    assert "Strict-Transport-Security" not in client.get("/").headers
