"""What the reverse-proxy tests (nginx, HAProxy) share: rendering a recipe, fallback's mode, requests."""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import procs
import pytest
import requests
from served import Served, run_cli
from standin import StandIn

STARTUP_SECONDS = 10


def wait_until_listening(process: subprocess.Popen, port: int, name: str, describe: Callable[[], str]) -> None:
    """Return once `port` on 127.0.0.1 accepts connections; if `process` exits or takes over STARTUP_SECONDS,
    stop it and raise with `describe()` (its log)."""
    procs.wait_ready(process, procs.listening(port), name, describe, STARTUP_SECONDS)


def render(template: str, **values: str) -> str:
    """The template with its @PLACEHOLDERS@ replaced, as sed would; every placeholder must be given."""
    for name, value in values.items():
        template = template.replace(f"@{name}@", value)
    leftover = re.findall(r"@[A-Z_]+@", template)
    assert not leftover, f"placeholders left in the rendered configuration: {leftover}"
    return template


def fallback_env(folder: Path, main_site: StandIn, secret: str, **extra: str) -> dict:
    """fallback behind one trusted proxy hop, probing the stand-in main site."""
    return {
        **os.environ,
        "FALLBACK_MAIN_URL": main_site.url,
        "FALLBACK_CHECK_URLS": main_site.url,
        "FALLBACK_DATABASE": str(folder / "fallback.db"),
        "FALLBACK_SECRET_KEY": secret,
        "FALLBACK_FORM_MIN_SECONDS": "0",
        "FALLBACK_RATE_LIMIT": "0",
        "FALLBACK_TRUSTED_PROXIES": "1",
        **extra,
    }


class Mode:
    """fallback's forced mode, changed through its CLI only when it differs from the last one set."""

    def __init__(self, env: dict, folder: Path, fallback: Served, reason: str):
        self.env, self.folder, self.fallback, self.reason, self.current = env, folder, fallback, reason, None

    def __call__(self, mode: str) -> None:
        if mode == self.current:
            return
        result = run_cli(["mode", mode, "--reason", self.reason], self.env, self.folder)
        assert result.returncode == 0, result.stderr
        self.current = mode
        # Every worker re-reads the flag within half a second; then check it directly, not via the proxy.
        time.sleep(0.6)
        expected = 503 if mode == "down" else 302
        deadline = time.monotonic() + 3
        while requests.get(self.fallback.url + "/probe", allow_redirects=False, timeout=5).status_code != expected:
            assert time.monotonic() < deadline, f"fallback did not switch to mode {mode}"
            time.sleep(0.1)


def fresh(path: str = "/page") -> str:
    """A path no other request used: the micro-cache is keyed on it."""
    return f"{path}-{uuid.uuid4().hex[:10]}"


def get(proxy, path: str, **headers) -> requests.Response:
    """GET `path` through the proxy (anything with a `url`), redirects not followed."""
    return requests.get(proxy.url + path, headers=headers, allow_redirects=False, timeout=10)


def as_received(proxy, site: StandIn, path: str) -> tuple[requests.Response, dict]:
    """GET `path` through the proxy, with the headers the main site received for it.

    The stand-in keeps only the last request's headers, and health checks hit it too: ask again (a few
    times at most) until the last request it recorded is this one.
    """
    for _ in range(5):
        response = get(proxy, path)
        headers = site.last_headers
        if site.paths[-1] == path:
            return response, headers
    pytest.fail(f"the main site never recorded {path} last")


def embedded_path(page: str) -> str:
    """The landing path fallback embedded in its page's form."""
    return re.search(r'name="path"[^>]*value="([^"]*)"', page).group(1)
