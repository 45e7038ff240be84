"""`fallback status`, `mode` and `export` with --url: a real `fallback serve` on 127.0.0.1, driven through its API."""

from __future__ import annotations

import json

import pytest
import requests
from helpers import every_worker_answers, form_token, wait_for_status
from served import Served, run_cli
from standin import StandIn

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

TOKEN = "integration-api-token-0123"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One instance for the module, its database in a folder of its own; the checker probes a healthy stand-in."""
    folder = tmp_path_factory.mktemp("instance")
    with StandIn() as site:
        env = {
            "FALLBACK_MAIN_URL": "https://www.example.com",
            "FALLBACK_CHECK_URLS": site.url,
            "FALLBACK_API_TOKEN": TOKEN,
            "FALLBACK_FORM_MIN_SECONDS": "0",
            "FALLBACK_RATE_LIMIT": "0",
        }
        with Served(env, folder) as server:
            server.env_for_cli = env  # type: ignore[attr-defined]
            yield server


@pytest.fixture
def laptop(tmp_path, served):
    """A shell elsewhere: no database in its folder, the instance's URL and token in its environment."""
    return {"FALLBACK_URL": served.url, "FALLBACK_API_TOKEN": TOKEN}, tmp_path


def lasting_lines(text: str) -> list[str]:
    """The status text without what differs between two readings or two places: the heartbeat and the source."""
    return [line for line in text.splitlines() if not line.startswith(("checker:", "database:", "instance:"))]


def test_mode_through_the_api_switches_every_worker_and_is_recorded_as_by_api(served, laptop):
    env, folder = laptop
    result = run_cli(["mode", "down", "--for", "30m", "--reason", "deploy"], env, folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("mode set to down until ")
    assert result.stdout.splitlines()[-1] == f"instance: {served.url}"
    assert not (folder / "fallback.db").exists()  # nothing local was opened, let alone created
    assert (
        wait_for_status(served.url + "/landing", 503, 1.5).status_code == 503
    )  # promptly: the worker that took the PUT, at once
    every_worker_answers(served.url + "/landing", 503)  # and, within its cache's lifetime, the other
    document = json.loads(run_cli(["status", "--json"], env, folder).stdout)
    assert document["mode"] == "down" and document["reason"] == "deploy" and document["instance"] == served.url
    back = run_cli(["mode", "auto", "--url", served.url], {"FALLBACK_API_TOKEN": TOKEN}, folder)
    assert back.returncode == 0 and back.stdout.startswith("mode set to auto\n")


def test_status_through_the_api_prints_what_the_local_command_prints(served, laptop):
    env, folder = laptop
    remote = run_cli(["status"], env, folder)
    local = run_cli(["status"], served.env_for_cli, served.cwd)
    assert remote.returncode == local.returncode == 0, remote.stderr
    assert lasting_lines(remote.stdout) == lasting_lines(local.stdout)
    assert remote.stdout.splitlines()[-1] == f"instance: {served.url}"


def test_export_through_the_api_is_the_local_export_byte_for_byte(served, laptop):
    env, folder = laptop
    assert run_cli(["mode", "down"], env, folder).returncode == 0
    every_worker_answers(served.url + "/landing", 503)
    for n in range(3):
        page = requests.get(served.url + "/landing", allow_redirects=False, timeout=5)
        assert page.status_code == 503
        data = {"token": form_token(page.text), "path": "/landing", "email": f"lead{n}@example.org", "consent": "y"}
        data["message"] = "=1+1" if n == 1 else f"hello {n}"
        assert requests.post(served.url + "/_fallback/contact", data=data, allow_redirects=False, timeout=5).ok
    remote = run_cli(["export"], env, folder)
    local = run_cli(["export"], served.env_for_cli, served.cwd)
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout and "lead2@example.org" in remote.stdout
    later = run_cli(["export", "--since", "2999-01-01"], env, folder)
    assert later.stdout == run_cli(["export", "--since", "2999-01-01"], served.env_for_cli, served.cwd).stdout
    run_cli(["mode", "auto"], env, folder)


def test_a_wrong_token_is_one_clear_line_and_a_non_zero_exit(served, laptop):
    env, folder = laptop
    for command in (["status"], ["mode", "down"], ["export"]):
        result = run_cli(command, {**env, "FALLBACK_API_TOKEN": "a-wrong-token-of-24-characters"}, folder)
        assert result.returncode == 2
        assert result.stderr.strip() == f"Error: {served.url} refused the token (401): check FALLBACK_API_TOKEN"
        assert "Traceback" not in result.stderr


def test_url_without_a_token_says_what_is_missing(served, tmp_path):
    result = run_cli(["status", "--url", served.url], {}, tmp_path)
    assert result.returncode == 2 and "FALLBACK_API_TOKEN" in result.stderr


def test_an_instance_that_cannot_be_reached_is_one_line_and_exit_2(tmp_path):
    from procs import free_port

    result = run_cli(
        ["status"], {"FALLBACK_URL": f"http://127.0.0.1:{free_port()}", "FALLBACK_API_TOKEN": TOKEN}, tmp_path
    )
    assert result.returncode == 2 and "could not reach" in result.stderr and "Traceback" not in result.stderr
