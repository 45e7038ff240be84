"""deploy/haproxy/haproxy.cfg in a real HAProxy, in front of a stand-in main site and a real `fallback serve`.

Everything listens on 127.0.0.1 and every request goes there. HAProxy runs in the foreground, one per test
(so each test starts with the main site considered up), and is stopped by its fixture, failure or not. Which
server answered each request is read from HAProxy's log (`main/main`, `main/fallback`, `fallback/fallback`).

Skipped when /usr/sbin/haproxy is missing, unless CI is set: then a missing HAProxy fails every test.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid

import proxies
import pytest
import requests
from proxies import HAPROXY, HAProxy, as_received, embedded_path, fresh, get
from proxies import HAPROXY_TEMPLATE as TEMPLATE
from served import Served
from standin import OK_BODY

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

if not HAPROXY.exists() and "CI" not in os.environ:
    pytest.skip(f"{HAPROXY} is not installed (Debian package haproxy)", allow_module_level=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("haproxy")


@pytest.fixture(scope="module")
def fallback_env(folder, main_site):
    return proxies.fallback_env(folder, main_site, "haproxy-test-secret")


@pytest.fixture(scope="module")
def fallback(fallback_env, folder):
    with Served(fallback_env, folder) as server:
        yield server


@pytest.fixture(scope="module")
def set_mode(fallback_env, folder, fallback):
    return proxies.Mode(fallback_env, folder, fallback, "haproxy test")


@pytest.fixture
def haproxy(tmp_path, main_site, fallback):
    with HAProxy(tmp_path / "haproxy", f"127.0.0.1:{main_site.port}", f"127.0.0.1:{fallback.port}") as proxy:
        yield proxy


def test_the_template_names_its_placeholders(haproxy):
    placeholders = set(re.findall(r"@[A-Z_]+@", TEMPLATE.read_text()))
    assert placeholders == {"@LISTEN@", "@MAIN_UPSTREAM@", "@MAIN_HOST@", "@FALLBACK_UPSTREAM@"}
    checked = subprocess.run(
        [str(HAPROXY), "-c", "-f", str(haproxy.config)], capture_output=True, text=True, timeout=10
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_healthy_main_site_is_proxied_with_the_forwarded_headers(main_site, haproxy):
    path = fresh("/hello") + "?utm_source=tv"
    response, headers = as_received(haproxy, main_site, path)
    assert response.status_code == 200 and response.content == OK_BODY
    assert headers["Host"] == f"127.0.0.1:{haproxy.port}"
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert set(haproxy.servers(path, 1)) == {"main/main"}


def test_a_main_site_answering_503_is_replaced_by_fallback_then_comes_back(main_site, haproxy, fallback, set_mode):
    set_mode("down")
    main_site.behaviour = "error"
    # The request that reveals the failure may get the main site's own 503 (HAProxy 2.6 does not replay
    # a 5xx answer to another server); it takes the main site out at once.
    first = fresh("/campaign/tv") + "?utm_source=tv"
    assert get(haproxy, first).status_code == 503
    assert first in main_site.paths
    # The next visitors go straight to fallback, which gets their path and query.
    second = fresh("/campaign/tv") + "?utm_source=tv"
    response = get(haproxy, second)
    assert response.status_code == 503 and 'name="token"' in response.text
    assert embedded_path(response.text) == second
    assert second not in main_site.paths
    assert haproxy.servers(second.split("?")[0], 1) == ["main/fallback"]
    # Two good checks later (a second apart), visitors get the main site again.
    main_site.behaviour = "ok"
    started = time.monotonic()
    while (response := get(haproxy, fresh("/back"))).status_code != 200:
        assert time.monotonic() - started < 10, "the main site did not come back within 10 s"
        time.sleep(0.2)
    assert response.content == OK_BODY


def test_a_hanging_main_site_is_taken_out_by_the_checks_before_any_visitor_waits(main_site, haproxy, set_mode):
    set_mode("down")
    main_site.behaviour = "hang"
    started = time.monotonic()
    while "main/main is DOWN" not in haproxy.log.read_text():
        assert time.monotonic() - started < 10, "the checks did not take the hanging main site out within 10 s"
        time.sleep(0.2)
    path = fresh("/hanging")
    started = time.monotonic()
    response = get(haproxy, path)
    assert time.monotonic() - started < 2
    assert response.status_code == 503 and embedded_path(response.text) == path
    assert path not in main_site.paths
    main_site.stop()  # end the hanging checks' connections now


def test_an_unreachable_main_site_gets_fallbacks_page_at_once(main_site, haproxy, set_mode):
    set_mode("down")
    main_site.stop()
    for _ in range(3):
        path = fresh("/refused")
        started = time.monotonic()
        response = get(haproxy, path)
        assert time.monotonic() - started < 3
        assert response.status_code == 503 and embedded_path(response.text) == path
        assert haproxy.servers(path, 1) == ["main/fallback"]


def test_fallbacks_own_routes_never_reach_the_main_site(main_site, haproxy, set_mode):
    set_mode("down")
    marker = uuid.uuid4().hex[:10]
    assert get(haproxy, f"/_fallback/status.json?m={marker}").json()["mode"] == "down"
    response = requests.post(f"{haproxy.url}/_fallback/contact?m={marker}", data={}, allow_redirects=False, timeout=10)
    assert response.status_code == 400
    assert haproxy.servers(marker, 2) == ["fallback/fallback", "fallback/fallback"]
    assert not any(marker in path for path in main_site.paths)


def test_fallback_sees_the_visitors_host_and_not_forged_forwarded_headers(main_site, haproxy, set_mode):
    """fallback serves the page rather than redirect when the Host is the main URL's own: the loop guard."""
    set_mode("up")
    main_site.stop()
    assert get(haproxy, fresh("/promo")).status_code == 302  # another host: fallback redirects
    main_host = f"127.0.0.1:{main_site.port}"
    forged = get(
        haproxy, fresh("/loop"), Host=main_host, **{"X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "4444"}
    )
    assert forged.status_code == 503


def test_a_probe_through_haproxy_that_lands_on_fallback_during_an_outage_is_reported_as_reaching_fallback_itself(
    main_site, haproxy, fallback_env, set_mode
):
    from fallback.checking.probe import probe
    from fallback.checking.selfprobe import probe_key

    key = probe_key(fallback_env["FALLBACK_SECRET_KEY"])
    assert probe(haproxy.url + fresh("/probed"), 5, self_key=key).ok
    set_mode("down")
    main_site.stop()
    result = probe(haproxy.url + fresh("/probed"), 5, self_key=key)
    assert result.self_probe and result.status == 503
