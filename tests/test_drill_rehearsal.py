"""`fallback drill --rehearse` and `--load` against a real `fallback serve` on 127.0.0.1, with a stand-in main
site: the page shown and timed, the drill lead read back and erased (never exported, mailed or sent as a
webhook), the mode restored exactly, also on SIGINT and SIGTERM; after a SIGKILL, the expiry brings it back."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import timedelta

import pytest
import requests
from helpers import ADMIN_PASSWORD, EVERY_WORKER_SECONDS, answers_between, monotonic_at, wait_for
from mailserver import SMTPServer
from procs import fallback_command, free_port, interruptible_child
from served import Served, run_cli
from standin import StandIn
from webhook_receiver import Receiver

from fallback.core.clock import utcnow
from fallback.storage import open_storage

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

BACKENDS = ["sqlite", "postgres"]
HOOK_SECRET = "whsec_" + "dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IG9mIDMyIGJ5dGVz"
API_TOKEN = "drill-rehearsal-api-token"
EXACT = ("mode", "mode_until", "mode_reason", "mode_by", "mode_changed_at")


def base_env(database: str, main_url: str, public_url: str) -> dict[str, str]:
    return {
        "FALLBACK_MAIN_URL": main_url,
        "FALLBACK_PUBLIC_URL": public_url,
        "FALLBACK_DATABASE": database,
        "FALLBACK_SECRET_KEY": "drill-rehearsal-secret",
        "FALLBACK_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "FALLBACK_CHECK_INTERVAL": "1",
        "FALLBACK_CHECK_TIMEOUT": "2",
        "FALLBACK_RATE_LIMIT": "0",
        "FALLBACK_API_TOKEN": API_TOKEN,
    }


def flag_fields(database: str) -> dict:
    storage = open_storage(database)
    try:
        flag = storage.flag.read()
    finally:
        storage.close()
    return {field: getattr(flag, field) for field in EXACT}


def force_before(database: str) -> dict:
    """An operator's forced mode with an expiry and a reason, as the rehearsal must find it again."""
    storage = open_storage(database)
    try:
        storage.flag.set_mode("up", until=utcnow() + timedelta(hours=2), reason="TV slot at 20:00", by="cli (alice)")
    finally:
        storage.close()
    return flag_fields(database)


def test_a_rehearsal_shows_the_page_reads_the_drill_lead_back_and_restores_the_mode_exactly(database, tmp_path):
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    with StandIn() as site, Receiver() as hooks, SMTPServer() as mail:
        env = {
            **base_env(database, site.url, public),
            "FALLBACK_WEBHOOK_URLS": hooks.url,
            "FALLBACK_WEBHOOK_SECRET": HOOK_SECRET,
            "FALLBACK_SMTP_URL": mail.url,
            "FALLBACK_MAIL_FROM": "shop@example.org",
            "FALLBACK_FOLLOWUP_DELAY": "0",
        }
        with Served(env, tmp_path, port=port) as served:
            before = force_before(database)
            drill = run_cli(["drill", "--rehearse", "--json"], env, tmp_path, timeout=60)
            items = {item["name"]: item for item in json.loads(drill.stdout)}
            after = flag_fields(database)
            leads = requests.get(
                served.url + "/_fallback/api/v1/leads", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=5
            ).json()
            time.sleep(1.5)  # a round of the background senders: a lead.created or a mail would have gone by now
            posted = [json.loads(body)["type"] for _, body in hooks.posts]
    assert drill.returncode == 0, drill.stdout + drill.stderr
    statuses = {name: item["status"] for name, item in items.items()}
    for name in (
        "rehearsal: page shown",
        "page size",
        "rehearsal: drill lead",
        "rehearsal: drill lead erased",
        "rehearsal: redirect again",
    ):
        assert statuses[name] == "pass", items[name]
    assert statuses["rehearsal: mode restored"] == "pass" and "up until" in items["rehearsal: mode restored"]["detail"]
    assert "read back as a drill lead" in items["rehearsal: drill lead"]["detail"]
    assert after == before  # mode, expiry, reason, who and since when
    assert leads == {"leads": [], "next": None}
    assert "lead.created" not in posted and "mode.changed" in posted
    assert mail.mailbox.messages == []
    export = run_cli(["export"], env, tmp_path)
    assert export.returncode == 0 and "drill.example.com" not in export.stdout


def start_drill(env: dict, cwd, expiry: str = "60s") -> subprocess.Popen:
    return subprocess.Popen(
        fallback_command() + ["drill", "--rehearse", "--expiry", expiry],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible_child,  # the SIGINT a test sends is Ctrl-C, even when pytest runs in the background
    )


# How long a drill may take to reach its rehearsal (start-up, then the checklist's probes): a guard against a hang,
# loose enough for a busy machine.
REHEARSAL_REACHED_SECONDS = 60


def forced_by_drill(database: str) -> bool:
    return (flag_fields(database)["mode_by"] or "").startswith("drill")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_rehearsal_restores_the_mode_before_it_exits(database, tmp_path, sig):
    with StandIn() as site:
        # The public URL answers, but never with the page: the rehearsal waits for it, and is interrupted then.
        env = base_env(database, site.url, site.url.rstrip("/"))
        open_storage(database).close()
        before = force_before(database)
        drill = start_drill(env, tmp_path)
        try:
            wait_for(lambda: forced_by_drill(database), REHEARSAL_REACHED_SECONDS, "the rehearsal's forced mode")
            drill.send_signal(sig)
            out, err = drill.communicate(timeout=20)
        finally:
            drill.kill()
    assert drill.returncode == 130, out + err
    assert "drill interrupted during the rehearsal; mode: back to up until" in err
    assert flag_fields(database) == before


def test_a_killed_rehearsal_leaves_the_page_forced_only_until_its_expiry(database, tmp_path):
    port = free_port()
    with StandIn() as site:
        env = base_env(database, site.url, site.url.rstrip("/"))  # never the page: the rehearsal waits, is killed
        with Served({**env, "FALLBACK_PUBLIC_URL": f"http://127.0.0.1:{port}"}, tmp_path, port=port) as served:
            drill = start_drill(env, tmp_path, expiry="8s")
            try:
                wait_for(lambda: forced_by_drill(database), REHEARSAL_REACHED_SECONDS, "the rehearsal's forced mode")
                seen = time.monotonic()
                drill.send_signal(signal.SIGKILL)
                drill.communicate(timeout=10)
            finally:
                drill.kill()
            until = monotonic_at(flag_fields(database)["mode_until"])
            # The kill left the page on, for every visitor from a second after the change until the expiry...
            answers_between(served.url + "/", 503, seen + EVERY_WORKER_SECONDS, end=until, asks=4)
            # ...and from a second after the expiry every visitor is redirected again.
            answers_between(served.url + "/", 302, until + EVERY_WORKER_SECONDS, asks=4)
    after = flag_fields(database)
    assert after["mode"] == "auto" or after["mode_until"] <= utcnow()  # handed back by the expiry, not by drill


def test_load_reports_rps_and_p99_and_stops_in_time(database, tmp_path):
    port = free_port()
    with StandIn() as site:
        env = base_env(database, site.url, f"http://127.0.0.1:{port}")
        with Served(env, tmp_path, port=port):
            started = time.monotonic()
            drill = run_cli(["drill", "--load", "2", "--connections", "4", "--json"], env, tmp_path, timeout=60)
            took = time.monotonic() - started
    [load] = [item for item in json.loads(drill.stdout) if item["name"].startswith("load")]
    assert load["name"] == "load 2 s x 4 connections" and load["status"] == "pass", load
    assert "requests/s" in load["detail"] and "p99" in load["detail"] and "x 302" in load["detail"]
    rate = float(load["detail"].split(" requests/s")[0].replace(",", ""))
    assert rate > 10
    # The burst, the checklist's own requests and the command's start, with room for a busy machine; a burst that
    # did not stop would run into run_cli's timeout (60 s).
    assert took < 2 + 30


def test_no_rehearsal_when_the_public_url_does_not_answer_and_the_mode_is_left_alone(database, tmp_path):
    with StandIn() as site:
        open_storage(database).close()
        env = base_env(database, site.url, f"http://127.0.0.1:{free_port()}")
        drill = run_cli(["drill", "--rehearse", "--json"], env, tmp_path, timeout=60)
    assert drill.returncode == 1
    [rehearsal] = [item for item in json.loads(drill.stdout) if item["name"].startswith("rehearsal")]
    assert rehearsal["status"] == "fail" and "not run" in rehearsal["detail"]
    storage = open_storage(database)
    try:
        assert storage.flag.mode_changes() == []
    finally:
        storage.close()


def test_rehearse_refuses_a_missing_database_in_one_line(tmp_path):
    with StandIn() as site:
        env = base_env(str(tmp_path / "nowhere.db"), site.url, site.url)
        drill = run_cli(["drill", "--rehearse"], env, tmp_path)
    assert drill.returncode == 2 and "no database at" in drill.stderr and "Traceback" not in drill.stderr
    assert not (tmp_path / "nowhere.db").exists()
