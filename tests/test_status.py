"""The status documents: what anyone may read, what only the admin may, what healthz says, and what it costs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from flask import Flask
from helpers import log_in

from fallback.checking.status import PublicStatus, ThrottledLog
from fallback.core.clock import utcnow
from fallback.serving.app import create_app, install_app_wide

BACKENDS = ["sqlite", "postgres"]
LEAKY_URL = "http://ops:hunter2@10.0.3.7:8080/health?key=s3cr3t"


@pytest.fixture
def outage(storage, app):
    """An outage as the checker records it, with an admin's note, a checker and a lead stored."""
    from fallback.storage import NewLead

    storage.flag.flip("unknown", "down", f"{LEAKY_URL}: HTTP 503")
    storage.checker.claim("checker-host:4242", 60)
    storage.checker.record_round("checker-host:4242", [], network_doubt=True, note="admin note: call Bob")
    storage.flag.set_mode("auto", reason="an admin's private reason", by="admin (web)")
    storage.leads.save(NewLead("alice@example.org"))
    app.extensions["fallback"].flag.invalidate()
    return storage


def test_the_public_status_holds_state_mode_since_and_retry_after_and_nothing_else(client, outage):
    response = client.get("/_fallback/status.json")
    document = response.get_json()
    assert set(document) == {"state", "mode", "since", "retry_after"}
    assert (document["state"], document["mode"], document["retry_after"]) == ("down", "auto", 120)
    for secret in (
        "hunter2",
        "s3cr3t",
        "10.0.3.7",
        "HTTP 503",
        "call Bob",
        "private reason",
        "checker-host",
        "4242",
        "leads",
        "spam",
    ):
        assert secret not in response.get_data(as_text=True)


def test_since_is_when_the_current_state_began_and_retry_after_when_a_forced_page_ends(client, storage, app):
    storage.flag.set_mode("down", until=utcnow() + timedelta(minutes=10), reason="TV", by="test")
    app.extensions["fallback"].flag.invalidate()
    document = client.get("/_fallback/status.json").get_json()
    assert document["since"] == storage.flag.read().mode_changed_at.isoformat(timespec="microseconds")
    assert 590 <= document["retry_after"] <= 600


def test_a_site_that_is_up_has_no_retry_after(client, storage):
    storage.flag.flip("unknown", "up", "all good")
    assert client.get("/_fallback/status.json").get_json() == {
        "state": "up",
        "mode": "auto",
        "since": storage.flag.read().state_since.isoformat(timespec="microseconds"),
        "retry_after": None,
    }


def test_a_storm_of_status_requests_reads_the_flag_once_a_second_and_never_counts_leads(settings, storage, monkeypatch):
    reads = []
    read = storage.flag.read
    monkeypatch.setattr(storage.flag, "read", lambda: reads.append(1) or read())
    monkeypatch.setattr(storage.leads, "count", lambda: pytest.fail("the public status counted the leads"))
    monkeypatch.setattr(storage.flag, "incidents", lambda *a: pytest.fail("the public status read the incidents"))
    client = create_app(settings, storage).test_client()
    reads.clear()
    started = time.monotonic()
    for _ in range(50):
        assert client.get("/_fallback/status.json").status_code == 200
    # Only the worker's cached flag reads the database: at most once per half second.
    assert len(reads) <= 1 + (time.monotonic() - started) / 0.5


def test_the_public_document_follows_the_workers_flag_and_outlives_a_database_failure(storage):
    from fallback.core.flag import CachedFlag
    from fallback.storage import StorageError

    now = [0.0]
    load = [storage.flag.read]
    flag = CachedFlag(lambda: load[0](), ttl=0.5, monotonic=lambda: now[0])
    status = PublicStatus(flag.get, ttl=1.0, monotonic=lambda: now[0])
    first = status.body()
    storage.flag.set_mode("down", by="test")
    now[0] = 0.4
    assert status.body() is first  # the worker's flag, hence its visitors, have not seen the change yet
    now[0] = 0.5
    assert json.loads(status.body())["mode"] == "down"

    def fail():
        raise StorageError("the database is unreachable")

    load[0] = fail
    now[0] = 5.0
    assert json.loads(status.body())["mode"] == "down"


def test_the_full_document_needs_an_admin_session(client, outage):
    anonymous = client.get("/_fallback/admin/status.json")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].rstrip("/").endswith("/_fallback/admin")
    log_in(client)
    response = client.get("/_fallback/admin/status.json")
    document = response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    assert document["checker"]["owner"] == "checker-host:4242" and document["leads"] == 1
    assert document["incident"]["reason"].endswith("HTTP 503")


def test_the_full_document_does_not_exist_without_an_admin_password(env, storage):
    del env["FALLBACK_ADMIN_PASSWORD"]
    from fallback.core.settings import Settings

    client = create_app(Settings.from_env(env), storage).test_client()
    assert client.get("/_fallback/admin/status.json").status_code == 404


def test_healthz_says_one_word_and_logs_the_details_once_a_minute_per_reason(client, caplog):
    caplog.set_level(logging.WARNING, "fallback.status")
    answers = {client.get("/_fallback/healthz").get_data(as_text=True) for _ in range(20)}
    assert answers == {"checker\n"}
    details = [record for record in caplog.records if "has not completed a round" in record.getMessage()]
    assert len(details) == 1


def test_the_health_log_speaks_again_after_its_interval_and_for_each_reason():
    now = [0.0]
    throttled = ThrottledLog(60, monotonic=lambda: now[0])
    assert throttled.warning("checker", "x") and not throttled.warning("checker", "x")
    assert throttled.warning("database", "y")
    now[0] = 60.0
    assert throttled.warning("checker", "x")


def test_importing_the_app_imports_neither_requests_nor_the_probe():
    code = (
        "import sys, fallback.serving.app, fallback.visitor.pages, fallback.team.admin, fallback.checking.status; "
        "print(sorted(name for name in ('requests', 'fallback.checking.probe', 'fallback.checking.checker', 'apprise') "
        "if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_security_headers_and_the_brand_hold_for_any_blueprint(app):
    from flask import Blueprint, render_template_string

    extra = Blueprint("extra", __name__)
    extra.add_url_rule("/_fallback/extra", "extra", lambda: render_template_string("{{ site_name }}"))
    bare = Flask("bare")
    bare.extensions["fallback"] = app.extensions["fallback"]
    install_app_wide(bare)
    bare.register_blueprint(extra)
    response = bare.test_client().get("/_fallback/extra")
    assert response.data == b"www.example.com"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
