"""Helpers the tests share: reading tokens from pages, sending the forms, reading the admin's status, the API's
problems."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent.parent / "bench"
# 12 characters at least, or the settings refuse it (fallback.config.MIN_PASSWORD_LENGTH).
ADMIN_PASSWORD = "correct horse battery staple"


def form_token(html: str) -> str:
    """The signed token of the contact form in a rendered page."""
    return re.search(r'name="token" value="([^"]+)"', html).group(1)


def live_delay(html: str) -> int:
    """The down page's delay before it looks again, in whole seconds: its script's and its meta refresh's, the same."""
    script = re.search(r'<script src="/_fallback/live.js" id="live" data-refresh="(\d+)"', html)
    meta = re.search(r'<noscript><meta http-equiv="refresh" content="(\d+)"></noscript>', html)
    assert script and meta and script.group(1) == meta.group(1)
    return int(script.group(1))


def forged(signed: str) -> str:
    """`signed` with one character of its signature's middle changed. Not the last characters: base64's last one may
    carry bits a decoder ignores, and a fixed replacement ("xx") can equal what was there."""
    at = len(signed) - 5
    return signed[:at] + ("A" if signed[at] != "A" else "B") + signed[at + 1 :]


def csrf_token(html: str) -> str:
    """The CSRF token of an admin form in a rendered page."""
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def contact_fields(client, **fields) -> dict:
    """The fields of a contact submission, with the token of a freshly rendered page."""
    page = client.get("/").get_data(as_text=True)
    data = {"token": form_token(page), "path": "/", "email": "paul@example.org", "consent": "y"}
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def log_in(client, password: str = ADMIN_PASSWORD):
    """Log in to the admin area; returns the response to the log-in post."""
    page = client.get("/_fallback/admin").get_data(as_text=True)
    return client.post("/_fallback/admin/login", data={"password": password, "csrf_token": csrf_token(page)})


def admin_get(url: str, path: str, password: str = ADMIN_PASSWORD) -> requests.Response:
    """GET `path` of the admin area of a running instance at `url`, through a new admin session."""
    with requests.Session() as session:
        page = session.get(url + "/_fallback/admin", timeout=5).text
        session.post(
            url + "/_fallback/admin/login", data={"password": password, "csrf_token": csrf_token(page)}, timeout=5
        )
        response = session.get(url + "/_fallback/admin" + path, allow_redirects=False, timeout=5)
        response.raise_for_status()
        return response


def admin_status(url: str, password: str = ADMIN_PASSWORD) -> dict:
    """The full status document of a running instance at `url`, read through a new admin session."""
    return admin_get(url, "/status.json", password).json()


def holds(condition, seconds: float, what: str) -> None:
    """Check `condition()` every 0.1 s for `seconds`; fail naming `what` the first time it does not hold."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), f"{what} stopped holding"
        time.sleep(0.1)


def api_status(url: str, token: str) -> dict:
    """The control API's `GET status` of a running instance at `url`, with the bearer `token`, never via a proxy."""
    with requests.Session() as session:
        session.trust_env = False
        headers = {"Authorization": f"Bearer {token}"}
        response = session.get(url + "/_fallback/api/v1/status", headers=headers, timeout=5)
    response.raise_for_status()
    return response.json()


class FixedClock:
    """A clock that stands still until a test moves `now`."""

    def __init__(self, now=None):
        self.now = now or datetime(2026, 11, 28, 20, 0, tzinfo=UTC)

    def __call__(self):
        return self.now


def refuse_writes(storage, refuse: bool = True) -> None:
    """Make every SQLite connection of `storage` refuse writes, as a read-only file or volume does."""
    if refuse:
        storage.leads.submit(None)  # the group-commit writer opens its connection, if it has not yet
        storage.db.conn  # and so does this thread
    for conn in storage.db.thread_connections:
        conn.execute(f"PRAGMA query_only = {'ON' if refuse else 'OFF'}")


@contextlib.contextmanager
def bench_module(name: str):
    """bench/<name>.py as a module, under a name of its own (bench/ is not a package), for the block's length."""
    spec = importlib.util.spec_from_file_location(f"fallback_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def wait_for(condition, seconds: float, what: str):
    """`condition()`'s first truthy result within `seconds`, or fail naming `what`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {seconds} s")


# How long an answer must hold after a mode change before every worker surely gives it: a worker keeps the flag
# it read for 0.5 s (state.Cached), and a margin.
FLAG_SETTLED = 0.6
# SPEC 3: a change of mode is "seen by every worker within a second". The tests hold a checker's flip and a forced
# mode's expiry to the same bound.
EVERY_WORKER_SECONDS = 1.0


def answers_between(url: str, status: int, start: float, end: float | None = None, asks: int = 20) -> list[int]:
    """Send up to `asks` requests to `url` (new connections, so any worker may answer), none before `start` and
    none at or after `end` (time.monotonic()); check that each answered `status`, and at least one was sent.

    What counts is when a request was sent, not when its answer came: a busy machine that answers late only gives
    the workers longer to see a change, so load cannot fail this check, while a worker that keeps an old flag past
    `start` does. Pass as `start` a moment the test saw the change stored (so after it was made), plus the bound.
    """
    time.sleep(max(0.0, start - time.monotonic()))
    answers = []
    while len(answers) < asks and (end is None or time.monotonic() < end):
        answers.append(requests.get(url, allow_redirects=False, timeout=5).status_code)
    assert answers, "no request could be sent in the window: the machine stalled the test past its end"
    assert answers == [status] * len(answers), f"{url}: answers to requests sent in the window: {answers}"
    return answers


def monotonic_at(moment: datetime) -> float:
    """The time.monotonic() reading of a wall-clock moment (a stored time on this machine's clock)."""
    return time.monotonic() + (moment - datetime.now(UTC)).total_seconds()


def wait_for_status(url: str, expected: int, seconds: float = 3.0) -> requests.Response:
    """GET `url` until it answers `expected`; else the answer to the first request sent after `seconds`.

    Timed by when each request is sent, not by when its answer comes: a busy machine's slow answers do not cut
    the wait short, so after a mode change every worker has had `seconds` to see it.
    """
    deadline = time.monotonic() + seconds
    while True:
        sent = time.monotonic()
        response = requests.get(url, allow_redirects=False, timeout=5)
        if response.status_code == expected or sent > deadline:
            return response
        time.sleep(0.05)


def every_worker_answers(url: str, status: int, seconds: float = 5.0) -> requests.Response:
    """`url`'s answer once it has been `status` without a break for longer than a worker keeps the flag.

    The first such answer means the change is stored; each worker re-reads the flag every 0.5 s at most, so
    once FLAG_SETTLED has passed since, every worker gives it, however gunicorn spreads the connections. Bounded.
    """
    run: dict[str, float] = {}

    def settled() -> list[requests.Response]:
        answer = requests.get(url, allow_redirects=False, timeout=2)
        now = time.monotonic()
        if answer.status_code != status:
            run.clear()  # a worker still holding the old flag: count again from the next answer
            return []
        # In a list: wait_for wants a true value, and a Response is false for any 4xx or 5xx.
        return [answer] if now - run.setdefault("since", now) >= FLAG_SETTLED else []

    [answer] = wait_for(settled, seconds, f"{url} answering {status} from every worker")
    return answer


def self_signed_certificate(folder: Path, days: int = 2) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, valid `days`, made by openssl: (certificate, key)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def assert_problem(response, status: int, word: str) -> dict:
    """The answer (a Flask test client's) is an RFC 9457 problem with that status, whose detail says `word`."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status and body["type"] and body["title"]
    assert word in body["detail"]
    return body


def lead_created_events(storage, hooks: dict[str, str]) -> list[dict]:
    """The lead.created webhooks queued for the receivers of `hooks` (FALLBACK_WEBHOOK_URLS, _SECRET), once the
    events recorded so far are dispatched: their data, oldest first."""
    from fallback.core.settings import Settings
    from fallback.outbound.messages import dispatch

    dispatch(storage, Settings.from_env(hooks))
    payloads = [json.loads(message.payload) for message in reversed(storage.outbox.recent("webhook", 100))]
    return [event["data"] for event in payloads if event["type"] == "lead.created"]
