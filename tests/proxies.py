"""What the reverse-proxy tests (nginx, HAProxy) share: rendering a recipe, fallback's mode, requests."""

from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import procs
import pytest
import requests
from procs import free_port, stop_group
from served import Served, run_cli
from standin import StandIn

STARTUP_SECONDS = 10
DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


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


# The proxies themselves, each serving one of deploy/'s templates.


NGINX = Path("/usr/sbin/nginx")


NGINX_TEMPLATE = DEPLOY / "nginx" / "fallback.conf"


class Nginx:
    """A foreground nginx (master and workers) serving the rendered template on a free loopback port."""

    def __init__(self, folder: Path, main: str, standby: str, template: Path = NGINX_TEMPLATE, **placeholders: str):
        self.folder = folder
        self.main, self.standby = main, standby
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.error_log = folder / "error.log"
        self.access_log = folder / "access.log"
        (folder / "fallback.conf").write_text(
            render(
                template.read_text(),
                LISTEN=f"127.0.0.1:{self.port}",
                SERVER_NAME="localhost",
                MAIN_UPSTREAM=main,
                FALLBACK_UPSTREAM=standby,
                CACHE_PATH=str(folder / "cache"),
                **placeholders,
            )
        )
        # Run as root (a container, CI), the master would hand its workers to `nobody`, who cannot
        # enter pytest's private temporary folders.
        user = ""
        if os.geteuid() == 0:
            user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
        (folder / "nginx.conf").write_text(f"""
{user}
worker_processes 2;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy_temp;
    fastcgi_temp_path {folder}/fastcgi_temp;
    uwsgi_temp_path {folder}/uwsgi_temp;
    scgi_temp_path {folder}/scgi_temp;
    log_format probe '$request_method $request_uri status=$status upstream=[$upstream_addr] '
                     'ustatus=[$upstream_status] cache=$upstream_cache_status took=$request_time';
    access_log {self.access_log} probe;
    include {folder}/fallback.conf;
}}
""")
        self.process: subprocess.Popen | None = None

    def start(self) -> Nginx:
        if not NGINX.exists():
            pytest.fail(f"{NGINX} is missing and CI is set: install the Debian package nginx-light")
        globals_ = f"daemon off; master_process on; pid {self.folder}/nginx.pid; error_log {self.error_log} info;"
        self.process = subprocess.Popen(
            [
                str(NGINX),
                "-p",
                str(self.folder),
                "-c",
                str(self.folder / "nginx.conf"),
                "-e",
                str(self.error_log),
                "-g",
                globals_,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        wait_until_listening(self.process, self.port, "nginx", self.startup_problem)
        return self

    def stop(self) -> None:
        stop_group(self.process)
        if self.process is not None:
            self.process.stderr.close()

    def startup_problem(self) -> str:
        """What nginx printed while starting (read once it has exited), then its error log."""
        printed = self.process.stderr.read().decode() if self.process.poll() is not None else ""
        return f"{printed}\n{self.errors()}"

    def errors(self) -> str:
        return self.error_log.read_text() if self.error_log.exists() else "(no error log)"

    def log_lines(self, marker: str, count: int, timeout: float = 3.0) -> list[str]:
        """The access-log lines of requests whose URI contains `marker`, once `count` of them are written."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.access_log.read_text() if self.access_log.exists() else ""
            lines = [line for line in text.splitlines() if marker in line]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


HAPROXY = Path("/usr/sbin/haproxy")


HAPROXY_TEMPLATE = DEPLOY / "haproxy" / "haproxy.cfg"


class HAProxy:
    """A foreground HAProxy serving the rendered template on a free loopback port; its log goes to a file."""

    def __init__(self, folder: Path, main: str, standby: str, template: Path = HAPROXY_TEMPLATE, **placeholders: str):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = folder / "haproxy.cfg"
        self.log = folder / "haproxy.log"
        self.config.write_text(
            render(
                template.read_text(),
                LISTEN=f"127.0.0.1:{self.port}",
                MAIN_UPSTREAM=main,
                MAIN_HOST="localhost",
                FALLBACK_UPSTREAM=standby,
                **placeholders,
            )
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> HAProxy:
        if not HAPROXY.exists():
            pytest.fail(f"{HAPROXY} is missing and CI is set: install the Debian package haproxy")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(HAPROXY), "-db", "-f", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until_listening(self.process, self.port, "haproxy", self.log.read_text)
        return self

    def stop(self) -> None:
        stop_group(self.process)

    def servers(self, marker: str, count: int, timeout: float = 3.0) -> list[str]:
        """The `backend/server` that answered each logged request whose line contains `marker`."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.log.read_text().splitlines() if marker in line and '"' in line]
            if len(lines) >= count or time.monotonic() > deadline:
                return [re.search(r" (\S+/\S+) \d", line).group(1) for line in lines]
            time.sleep(0.02)

    def __enter__(self) -> HAProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
