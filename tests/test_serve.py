"""End to end: `fallback serve` under gunicorn on 127.0.0.1, driven over HTTP like a visitor would."""

from __future__ import annotations

import concurrent.futures
import csv
import io
import os
import signal
import socket
import sqlite3
import time

import pytest
import requests
from helpers import ADMIN_PASSWORD, csrf_token, every_worker_answers, form_token, wait_for_status
from procs import answers, fallback_command, free_port, start_group, stop_group
from served import Served, run_cli

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

EXPORT_TOKEN = "integration-export-token"


@pytest.fixture
def site_env(tmp_path, main_site):
    """Settings for a served app whose database lives in an otherwise empty folder.

    Visitors are redirected to www.example.com, which nothing here ever contacts: the checker
    probes the stand-in.
    """
    return {
        "FALLBACK_MAIN_URL": "https://www.example.com",
        "FALLBACK_CHECK_URLS": main_site.url,
        "FALLBACK_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "FALLBACK_EXPORT_TOKEN": EXPORT_TOKEN,
        "FALLBACK_FORM_MIN_SECONDS": "0",
        "FALLBACK_RATE_LIMIT": "0",
    }


@pytest.fixture
def served(site_env, tmp_path):
    with Served(site_env, tmp_path) as server:
        yield server


def submit(base: str, email: str, **fields) -> requests.Response:
    """Load the page as a visitor, then send the form.

    Every worker sees a mode change within a second, so the page is fetched until it is the
    503 page rather than once (once could follow a stale worker's redirect off loopback).
    """
    page = wait_for_status(base + "/landing", 503)
    assert page.status_code == 503
    data = {"token": form_token(page.text), "path": "/landing", "email": email, "consent": "y", **fields}
    return requests.post(base + "/_fallback/contact", data=data, allow_redirects=False, timeout=10)


def export_rows(base: str, **params) -> list[dict]:
    response = requests.get(
        base + "/_fallback/admin/export.csv",
        params=params,
        timeout=10,
        headers={"Authorization": f"Bearer {EXPORT_TOKEN}"},
    )
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.text, newline="")))


def test_it_serves_from_an_empty_folder_and_captures_a_lead_end_to_end(served, site_env, tmp_path):
    assert wait_for_status(served.url + "/pricing", 302).headers["Location"] == "https://www.example.com/pricing"
    result = run_cli(["mode", "down", "--reason", "TV"], site_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fallback.db").exists()
    page = wait_for_status(served.url + "/pricing", 503, seconds=1.5)
    assert page.status_code == 503 and "Set-Cookie" not in page.headers
    response = submit(served.url, "Paul@Example.org", name="Paul")
    assert response.status_code == 303 and response.headers["Location"].endswith("/_fallback/thanks")
    exported = run_cli(["export"], site_env, tmp_path)
    assert exported.returncode == 0
    assert "Paul@Example.org" in exported.stdout
    assert [row["email"] for row in export_rows(served.url)] == ["Paul@Example.org"]


def test_it_merges_cases_and_keeps_spam_out_over_http(served, site_env, tmp_path):
    run_cli(["mode", "down"], site_env, tmp_path)
    wait_for_status(served.url + "/", 503)
    assert submit(served.url, "Paul@Example.org").status_code == 303
    assert submit(served.url, "paul@example.org").status_code == 303
    assert submit(served.url, "bot@example.org", website="http://spam.example").status_code == 303
    rows = export_rows(served.url)
    assert [(row["email"], row["submissions"]) for row in rows] == [("Paul@Example.org", "2")]
    status = run_cli(["status", "--json"], site_env, tmp_path)
    assert '"spam": 1' in status.stdout


def test_an_admin_logs_in_and_toggles_the_page_over_http(served):
    admin = requests.Session()
    login_page = admin.get(served.url + "/_fallback/admin", timeout=5)
    response = admin.post(
        served.url + "/_fallback/admin/login",
        allow_redirects=False,
        timeout=5,
        data={"password": ADMIN_PASSWORD, "csrf_token": csrf_token(login_page.text)},
    )
    assert response.status_code == 303
    dashboard = admin.get(served.url + "/_fallback/admin", timeout=5)
    response = admin.post(
        served.url + "/_fallback/admin/mode",
        allow_redirects=False,
        timeout=5,
        data={"mode": "down", "duration": "30m", "csrf_token": csrf_token(dashboard.text)},
    )
    assert response.status_code == 303
    # The worker that took the post shows the page at once; the other within its cache's lifetime (0.5 s).
    assert wait_for_status(served.url + "/anything", 503, seconds=1.5).status_code == 503
    page = every_worker_answers(served.url + "/", 503)
    assert 1700 < int(page.headers["Retry-After"]) <= 1800


@pytest.mark.parametrize("raw_path", ["//evil.example/x", "/\\evil.example", "/%2F%2Fevil.example", "/@evil.example"])
def test_a_raw_request_path_never_redirects_off_the_main_origin(served, raw_path):
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(f"GET {raw_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head = answer.split(b"\r\n\r\n")[0].decode("latin-1")
    location = [line for line in head.split("\r\n") if line.lower().startswith("location:")]
    assert location and location[0].split(":", 1)[1].strip().startswith("https://www.example.com/")


def test_120_concurrent_submissions_are_all_acknowledged_and_exported(served, site_env, tmp_path):
    run_cli(["mode", "down"], site_env, tmp_path)
    wait_for_status(served.url + "/", 503)
    emails = [f"visitor{i}@example.org" for i in range(120)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(lambda email: submit(served.url, email).status_code, emails))
    assert statuses == [303] * 120
    assert sorted(row["email"] for row in export_rows(served.url)) == sorted(emails)


def test_leads_acknowledged_before_a_kill_9_are_there_after_a_restart(site_env, tmp_path):
    server = Served(site_env, tmp_path).start()
    try:
        run_cli(["mode", "down"], site_env, tmp_path)
        wait_for_status(server.url + "/", 503)
        acknowledged = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
            futures = {pool.submit(submit, server.url, f"k{i}@example.org"): f"k{i}@example.org" for i in range(200)}
            # Mid-load: once the first answers are in (bounded), not after a fixed pause a busy machine may outlast.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and sum(future.done() for future in futures) < 5:
                time.sleep(0.02)
            server.stop(signal.SIGKILL)  # master and workers
            for future, email in futures.items():
                try:
                    if future.result().status_code == 303:
                        acknowledged.append(email)
                except requests.RequestException:
                    pass
    finally:
        server.stop(signal.SIGKILL)
    assert acknowledged, "the kill came before any lead was acknowledged"
    connection = sqlite3.connect(tmp_path / "fallback.db")
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()
    with Served(site_env, tmp_path) as restarted:
        stored = {row["email"] for row in export_rows(restarted.url)}
    assert set(acknowledged) <= stored


def test_a_worker_killed_mid_load_loses_no_acknowledged_lead(served, site_env, tmp_path):
    import os
    import subprocess

    run_cli(["mode", "down"], site_env, tmp_path)
    wait_for_status(served.url + "/", 503)
    workers = [
        int(pid)
        for pid in subprocess.run(
            ["pgrep", "-P", str(served.process.pid)], capture_output=True, text=True
        ).stdout.split()
    ]
    assert workers, "no gunicorn worker found"
    acknowledged = []

    def send(n):
        try:
            if submit(served.url, f"w{n}@example.org").status_code == 303:
                acknowledged.append(f"w{n}@example.org")
        except requests.RequestException:
            pass  # a request on the killed worker's connection may fail; it was not acknowledged

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        futures = [pool.submit(send, n) for n in range(300)]
        time.sleep(0.5)
        os.kill(workers[0], signal.SIGKILL)
        concurrent.futures.wait(futures, timeout=120)
    assert len(acknowledged) > 100
    connection = sqlite3.connect(tmp_path / "fallback.db")
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()
    assert set(acknowledged) <= {row["email"] for row in export_rows(served.url)}
    assert wait_for_status(served.url + "/", 503).status_code == 503  # gunicorn replaced the worker


def test_the_procfile_line_runs_and_honours_port(site_env, tmp_path):
    import os
    from pathlib import Path

    command = (Path(__file__).resolve().parent.parent / "Procfile").read_text().split("web:", 1)[1].strip()
    port = free_port()
    bin_dir = str(Path(__import__("sys").executable).parent)
    env = {**os.environ, **site_env, "PORT": str(port), "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    process = start_group(
        ["bash", "-c", f"exec {command}"],
        env,
        tmp_path,
        tmp_path / "procfile.log",
        answers(f"http://127.0.0.1:{port}/pricing"),
        name="the Procfile's web line",
        seconds=20,
    )
    try:
        response = requests.get(f"http://127.0.0.1:{port}/pricing", allow_redirects=False, timeout=5)
        assert response.status_code == 302
        assert (tmp_path / "fallback.db").exists()
    finally:
        stop_group(process)


def test_the_tests_themselves_cannot_reach_past_loopback():
    with pytest.raises(requests.ConnectionError, match="only reach loopback"):
        requests.get("https://www.example.com/", timeout=1)
    assert socket.getaddrinfo("127.0.0.1", 80)


def worker_pids(master: int) -> set[int]:
    """The gunicorn workers of a `fallback serve` master: its child processes."""
    children = open(f"/proc/{master}/task/{master}/children").read().split()
    return {int(pid) for pid in children}


@pytest.mark.parametrize(("web_concurrency", "option", "expected"), [("3", [], 3), ("3", ["--workers", "1"], 1)])
def test_serve_starts_web_concurrency_workers_unless_told_otherwise(
    site_env, tmp_path, web_concurrency, option, expected
):
    port = free_port()
    env = {**site_env, "FALLBACK_DATABASE": str(tmp_path / "fallback.db"), "WEB_CONCURRENCY": web_concurrency}
    process = start_group(
        [*fallback_command(), "serve", "--port", str(port), *option],
        {**os.environ, **env},
        tmp_path,
        tmp_path / "serve.log",
        answers(f"http://127.0.0.1:{port}/_fallback/status.json"),
    )
    try:
        deadline = time.monotonic() + 15  # gunicorn forks its workers one after the other
        while len(worker_pids(process.pid)) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # a worker too many would show by now
        assert len(worker_pids(process.pid)) == expected
    finally:
        stop_group(process)
