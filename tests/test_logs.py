"""The logs: the access log (off by default, Apache's combined format) and JSON lines, from a served instance."""

from __future__ import annotations

import json
import logging
import re
import stat
import sys
import time

import pytest
import requests
from served import Served

from fallback.core.logs import JsonFormatter

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

COMBINED_LINE = re.compile(
    r'^127\.0\.0\.1 - - \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "GET /pricing HTTP/1\.1" 302 0 '
    r'"https://ref\.example/" "log-test-agent/1"$'
)
API_TOKEN = "api-token-of-the-log-tests-0123"
VISITOR = {"User-Agent": "log-test-agent/1", "Referer": "https://ref.example/?q=paul%40example.org"}


def serve(main_site, tmp_path, **settings) -> Served:
    """`fallback serve` redirecting to www.example.com, probing the stand-in, with these settings."""
    env = {"FALLBACK_MAIN_URL": "https://www.example.com", "FALLBACK_CHECK_URLS": main_site.url, **settings}
    return Served(env, tmp_path, workers=1)


def lines_once(server: Served, wanted, seconds: float = 3.0) -> list[str]:
    """The server's log lines, once one of them satisfies `wanted` (or `seconds` passed)."""
    deadline = time.monotonic() + seconds
    while True:
        lines = server.log.read_text().splitlines()
        if any(wanted(line) for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_with_the_access_log_on_each_request_is_one_line_in_apaches_combined_format(main_site, tmp_path):
    with serve(main_site, tmp_path, FALLBACK_ACCESS_LOG="-") as server:
        requests.get(server.url + "/pricing?utm=tv", headers=VISITOR, allow_redirects=False, timeout=3)
        lines = lines_once(server, COMBINED_LINE.match)
    assert [line for line in lines if COMBINED_LINE.match(line)], "\n".join(lines)


def test_the_access_log_is_off_by_default(main_site, tmp_path):
    with serve(main_site, tmp_path) as server:
        requests.get(server.url + "/pricing?utm=tv", headers=VISITOR, allow_redirects=False, timeout=3)
        time.sleep(0.5)
        log = server.log.read_text()
    assert "log-test-agent" not in log and "/pricing" not in log


def test_with_json_logs_every_line_is_a_json_object_and_access_lines_carry_the_request(main_site, tmp_path):
    with serve(main_site, tmp_path, FALLBACK_LOG_FORMAT="json", FALLBACK_ACCESS_LOG="-") as server:
        requests.get(server.url + "/pricing?utm=tv", headers=VISITOR, allow_redirects=False, timeout=3)
        lines = lines_once(server, lambda line: "log-test-agent" in line)
    entries = [json.loads(line) for line in lines if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
    [access] = [entry for entry in entries if entry["logger"] == "gunicorn.access" and entry["path"] == "/pricing"]
    assert access["method"] == "GET" and access["path"] == "/pricing" and "query" not in access
    assert (access["status"], access["user_agent"], access["referer"]) == (
        302,
        "log-test-agent/1",
        "https://ref.example/",
    )
    assert COMBINED_LINE.match(access["message"])
    loggers = {entry["logger"] for entry in entries}
    assert "gunicorn.error" in loggers and any(name.startswith("fallback") for name in loggers), loggers


def test_a_json_line_carries_the_exception_of_a_record_that_has_one():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("fallback.checker", logging.ERROR, __file__, 1, "round %s failed", ("7",), True)
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "round 7 failed" and entry["level"] == "ERROR" and entry["logger"] == "fallback.checker"
    assert "RuntimeError: boom" in entry["exception"]


def test_the_access_log_file_is_its_owners_only_and_holds_no_query_string(main_site, tmp_path):
    log_file = tmp_path / "access.log"
    with serve(main_site, tmp_path, FALLBACK_ACCESS_LOG=str(log_file), FALLBACK_API_TOKEN=API_TOKEN) as server:
        for path in ("/_fallback/api/v1/leads?email=paul%40example.org", "/_fallback/unsubscribe?t=1.secret"):
            requests.delete(server.url + path, headers={"Authorization": "Bearer a-wrong-guess"}, timeout=3)
        requests.get(server.url + "/_fallback/admin?q=anna%40example.org", headers=VISITOR, timeout=3)
        deadline = time.monotonic() + 5
        while log_file.read_text().count("\n") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        text = log_file.read_text()
    assert text.count("\n") >= 3 and "/_fallback/api/v1/leads " in text, text
    for secret in ("paul", "anna", "example.org", "1.secret", "?", "%40"):
        assert secret not in text, (secret, text)
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
