"""deploy/nginx/fallback.conf in a real nginx, in front of a stand-in main site and a real `fallback serve`.

Everything listens on 127.0.0.1 and every request goes there. nginx runs in the foreground from a prefix
in a temporary folder and is stopped by its fixture, failure or not. Which upstream answered each request is
read from nginx's access log (`upstream=`), so "fallback was reached once" is counted, not guessed.

Skipped when /usr/sbin/nginx is missing, unless CI is set: then a missing nginx fails every test.
"""

from __future__ import annotations

import concurrent.futures
import http.server
import os
import re
import threading
import time
import uuid
from pathlib import Path

import proxies
import pytest
import requests
from helpers import ADMIN_PASSWORD, admin_status, form_token
from procs import free_port
from proxies import NGINX, Nginx, as_received, embedded_path, fresh, get
from proxies import NGINX_TEMPLATE as TEMPLATE
from served import Served
from standin import OK_BODY

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

if not NGINX.exists() and "CI" not in os.environ:
    pytest.skip(f"{NGINX} is not installed (Debian package nginx-light)", allow_module_level=True)


# nginx.


def reached(lines: list[str], port: int) -> int:
    """How many of these requests nginx passed to the upstream on `port`."""
    return sum(f"127.0.0.1:{port}" in line.split("upstream=[", 1)[1].split("]", 1)[0] for line in lines)


# The three processes, shared by the module: starting fallback costs a second or two.


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("nginx")


@pytest.fixture(scope="module")
def fallback_env(folder, main_site):
    return proxies.fallback_env(folder, main_site, "nginx-test-secret", FALLBACK_ADMIN_PASSWORD=ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def fallback(fallback_env, folder):
    with Served(fallback_env, folder) as server:
        yield server


@pytest.fixture(scope="module")
def nginx(folder, main_site, fallback):
    with Nginx(folder / "nginx", f"127.0.0.1:{main_site.port}", f"127.0.0.1:{fallback.port}") as server:
        yield server


@pytest.fixture(scope="module")
def set_mode(fallback_env, folder, fallback):
    return proxies.Mode(fallback_env, folder, fallback, "nginx test")


def test_the_template_names_its_placeholders_and_nginx_accepts_the_rendered_file(nginx):
    placeholders = set(re.findall(r"@[A-Z_]+@", TEMPLATE.read_text()))
    assert placeholders == {"@LISTEN@", "@SERVER_NAME@", "@MAIN_UPSTREAM@", "@FALLBACK_UPSTREAM@", "@CACHE_PATH@"}
    assert not re.findall(r"@[A-Z_]+@", (nginx.folder / "fallback.conf").read_text())
    assert "[emerg]" not in nginx.errors()


def test_a_healthy_main_site_is_proxied_with_the_forwarded_headers(main_site, nginx):
    path = fresh("/hello") + "?utm_source=tv"
    response, headers = as_received(nginx, main_site, path)
    assert response.status_code == 200
    assert response.content == OK_BODY
    assert "X-Cache-Status" not in response.headers
    assert headers["Host"] == f"127.0.0.1:{nginx.port}"
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert all(reached([line], main_site.port) for line in nginx.log_lines(path, 1))


def test_a_main_site_answering_503_gets_fallbacks_page_for_the_same_path(main_site, nginx, fallback, set_mode):
    set_mode("down")
    main_site.behaviour = "error"
    path = fresh("/campaign/tv") + "?utm_source=tv"
    response = get(nginx, path)
    assert response.status_code == 503
    assert "Service unavailable" not in response.text  # not the main site's own error page
    assert 'name="token"' in response.text and "Retry-After" in response.headers
    assert embedded_path(response.text) == path
    assert path in main_site.paths  # the main site was asked first
    [line] = nginx.log_lines(path.split("?")[0], 1)
    assert reached([line], main_site.port) == 1 and reached([line], fallback.port) == 1


def test_an_unreachable_main_site_gets_fallbacks_page(main_site, nginx, fallback, set_mode):
    set_mode("down")
    main_site.stop()
    path = fresh("/refused")
    started = time.monotonic()
    response = get(nginx, path)
    assert time.monotonic() - started < 3
    assert response.status_code == 503
    assert embedded_path(response.text) == path
    assert reached(nginx.log_lines(path, 1), fallback.port) == 1
    main_site.start()  # the same port again: nginx sends the next visitor to the main site at once
    assert get(nginx, fresh("/back")).status_code == 200


def test_the_down_page_is_micro_cached_for_a_few_seconds(main_site, nginx, fallback, set_mode):
    set_mode("down")
    main_site.stop()
    path = fresh("/spike")
    first = get(nginx, path)
    second = get(nginx, path)
    assert (first.status_code, first.headers["X-Cache-Status"]) == (503, "MISS")
    assert (second.status_code, second.headers["X-Cache-Status"]) == (503, "HIT")
    assert second.content == first.content
    assert reached(nginx.log_lines(path, 2), fallback.port) == 1
    # No longer than fallback's max-age, 5 seconds (nginx counts whole seconds), then fallback is asked again.
    time.sleep(6.1)
    third = get(nginx, path)
    assert third.status_code == 503 and third.headers["X-Cache-Status"] in ("EXPIRED", "MISS")
    assert reached(nginx.log_lines(path, 3), fallback.port) == 2


def test_a_spike_on_a_cold_page_reaches_fallback_once(main_site, nginx, fallback, set_mode):
    set_mode("down")
    main_site.behaviour = "error"
    path = fresh("/tv")
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: get(nginx, path), range(40)))
    assert {response.status_code for response in responses} == {503}
    assert {embedded_path(response.text) for response in responses} == {path}
    assert reached(nginx.log_lines(path, 40), fallback.port) == 1
    assert reached(nginx.log_lines(path, 40), main_site.port) == 40  # the cache is only on the fallback side


def test_cached_variants_follow_accept_and_accept_language(main_site, nginx, set_mode):
    set_mode("down")
    main_site.stop()
    path = fresh("/variants")
    html = [get(nginx, path, Accept="text/html") for _ in range(2)]
    assert [r.headers["X-Cache-Status"] for r in html] == ["MISS", "HIT"]
    as_json = get(nginx, path, Accept="application/json")
    assert as_json.status_code == 503 and as_json.headers["Content-Type"].startswith("application/json")
    assert as_json.json()["state"] == "down"
    french = get(nginx, path, Accept="text/html", **{"Accept-Language": "fr"})
    assert french.status_code == 503 and 'lang="fr"' in french.text
    assert 'lang="en"' in get(nginx, path, Accept="text/html").text


def test_a_cached_down_page_never_hides_a_recovered_main_site(main_site, nginx, set_mode):
    set_mode("down")
    main_site.behaviour = "error"
    path = fresh("/recovery")
    assert get(nginx, path).status_code == 503
    assert get(nginx, path).headers["X-Cache-Status"] == "HIT"
    main_site.behaviour = "ok"
    response = get(nginx, path)
    assert response.status_code == 200 and response.content == OK_BODY


def test_a_form_from_a_cached_page_is_accepted(main_site, nginx, fallback, set_mode):
    set_mode("down")
    main_site.stop()
    path = fresh("/form")
    get(nginx, path)
    cached = get(nginx, path)
    assert cached.headers["X-Cache-Status"] == "HIT"
    leads = admin_status(fallback.url, ADMIN_PASSWORD)["leads"]
    data = {
        "token": form_token(cached.text),
        "path": path,
        "email": f"{uuid.uuid4().hex[:8]}@example.org",
        "consent": "y",
    }
    response = requests.post(nginx.url + "/_fallback/contact", data=data, allow_redirects=False, timeout=10)
    assert response.status_code == 303 and response.headers["Location"].endswith("/_fallback/thanks")
    assert admin_status(fallback.url, ADMIN_PASSWORD)["leads"] != leads


def test_an_empty_contact_post_passes_through_and_is_never_cached(main_site, nginx, fallback, set_mode):
    set_mode("down")
    marker = uuid.uuid4().hex[:10]
    for _ in range(2):
        response = requests.post(
            f"{nginx.url}/_fallback/contact?m={marker}", data={}, allow_redirects=False, timeout=10
        )
        assert response.status_code == 400
        assert response.headers.get("X-Cache-Status") != "HIT"
    assert reached(nginx.log_lines(marker, 2), fallback.port) == 2
    assert not any("/_fallback/" in path for path in main_site.paths)  # never sent to the main site


def test_a_post_to_a_visitor_path_reaches_fallback_every_time(main_site, nginx, fallback, set_mode):
    set_mode("down")
    main_site.stop()
    path = fresh("/order")
    for _ in range(2):
        response = requests.post(nginx.url + path, data={"q": "1"}, allow_redirects=False, timeout=10)
        assert response.status_code == 503 and response.headers.get("X-Cache-Status") != "HIT"
    assert reached(nginx.log_lines(path, 2), fallback.port) == 2


def test_fallbacks_own_routes_are_never_cached(main_site, nginx, fallback, set_mode):
    set_mode("down")
    marker = uuid.uuid4().hex[:10]
    routes = {
        "/_fallback/status.json": 200,
        "/_fallback/healthz": None,
        "/_fallback/admin": 200,
        "/_fallback/admin/export.csv": 401,
        "/_fallback/thanks": 200,
    }
    for route, status in routes.items():
        for _ in range(3):
            response = get(nginx, f"{route}?m={marker}")
            assert status is None or response.status_code == status, route
            assert response.headers.get("X-Cache-Status") != "HIT", route
        assert reached(nginx.log_lines(f"{route}?m={marker}", 3), fallback.port) == 3, route


def test_the_stylesheet_is_cached(main_site, nginx):
    path = f"/_fallback/page.css?m={uuid.uuid4().hex[:10]}"
    assert get(nginx, path).headers["X-Cache-Status"] == "MISS"
    # nginx moves the cache file into place just after answering: on a busy machine the next request may
    # still miss, so a few are allowed, within a bound.
    statuses = []
    for _ in range(10):
        statuses.append(get(nginx, path).headers["X-Cache-Status"])
        if statuses[-1] == "HIT":
            break
        time.sleep(0.05)
    assert statuses[-1] == "HIT", statuses


def test_a_redirect_from_fallback_is_never_cached(main_site, nginx, fallback, set_mode):
    set_mode("up")
    main_site.stop()
    path = fresh("/promo") + "?a=1"
    for _ in range(3):
        response = get(nginx, path)
        assert response.status_code == 302
        assert response.headers["Location"] == main_site.url_for(path)
        assert response.headers["X-Cache-Status"] != "HIT"
    assert reached(nginx.log_lines(path.split("?")[0], 3), fallback.port) == 3


def test_fallback_sees_the_visitors_host_and_not_forged_forwarded_headers(main_site, nginx, set_mode):
    """fallback serves the page rather than redirect when the Host is the main URL's own: the loop guard."""
    set_mode("up")
    main_site.stop()
    main_host = f"127.0.0.1:{main_site.port}"
    assert get(nginx, fresh("/loop"), Host=main_host).status_code == 503
    forged = get(
        nginx, fresh("/loop"), Host=main_host, **{"X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "4444"}
    )
    assert forged.status_code == 503


# The template's own rules, checked against a fake fallback that answers whatever a test needs.


class _FakeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5
    answers = {
        "cookie": (503, {"Cache-Control": "public, max-age=0, s-maxage=5", "Set-Cookie": "s=1; Path=/"}),
        "redirect": (302, {"Cache-Control": "public, max-age=60", "Location": "http://127.0.0.1/"}),
        "ok": (200, {"Cache-Control": "public, max-age=60"}),
        "bare503": (503, {}),
        "private": (503, {"Cache-Control": "no-store"}),
        "slow503": (503, {"Cache-Control": "public, max-age=0, s-maxage=5"}),
        "slower503": (503, {"Cache-Control": "public, max-age=0, s-maxage=5"}),
    }
    delays = {"slow503": 0.5, "slower503": 2.0}  # a busy fallback: the window in which a spike piles up

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        self.server.hits.append(self.path)
        answer = self.path.strip("/").split("-")[0]
        status, headers = self.answers[answer]
        time.sleep(self.delays.get(answer, 0))
        body = b"fake fallback\n"
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class FakeFallback:
    """A tiny server on 127.0.0.1 standing in for fallback, with an nginx in front whose main site refuses."""

    def __init__(self, folder: Path):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeHandler)
        self.server.daemon_threads = True
        self.server.hits = []
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        # The main upstream is a free port nothing listens on: every request falls back.
        self.nginx = Nginx(folder, f"127.0.0.1:{free_port()}", f"127.0.0.1:{self.port}")

    def __enter__(self) -> FakeFallback:
        self.thread.start()
        try:
            self.nginx.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the fake fallback (connections are then refused); nginx keeps running."""
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(3)
        self.server.server_close()

    def __exit__(self, *exc) -> None:
        try:
            self.nginx.stop()
        finally:
            self.stop()


@pytest.fixture
def fake(tmp_path):
    with FakeFallback(tmp_path / "nginx") as fake:
        yield fake


@pytest.mark.parametrize(
    "answer, cached",
    [
        ("cookie", False),  # sets a cookie
        ("redirect", False),  # a redirect, even one that says it may be cached
        ("ok", False),  # only the 503 page is stored
        ("private", False),  # no-store is honoured
        ("bare503", True),  # a 503 without Cache-Control still gets its 5 seconds
    ],
)
def test_only_a_cookieless_503_from_fallback_is_stored(fake, answer, cached):
    path = f"/{answer}-{uuid.uuid4().hex[:8]}"
    statuses = [get(fake.nginx, path).headers.get("X-Cache-Status") for _ in range(3)]
    assert ("HIT" in statuses) == cached, statuses
    assert reached(fake.nginx.log_lines(path, 3), fake.port) == (1 if cached else 3)


def test_a_spike_waits_for_one_answer_from_a_slow_fallback(fake):
    path = f"/slow503-{uuid.uuid4().hex[:8]}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: get(fake.nginx, path), range(20)))
    assert {response.status_code for response in responses} == {503}
    assert reached(fake.nginx.log_lines(path, 20), fake.port) == 1
    assert fake.server.hits.count(path) == 1


def test_the_last_down_page_is_served_while_fallback_itself_is_unreachable(fake):
    path = f"/bare503-{uuid.uuid4().hex[:8]}"
    assert get(fake.nginx, path).headers["X-Cache-Status"] == "MISS"
    fake.stop()
    time.sleep(6.1)  # past the 5 seconds (whole seconds to nginx): stale, and fallback refuses connections
    response = get(fake.nginx, path)
    assert (response.status_code, response.headers["X-Cache-Status"]) == (503, "STALE")
    assert response.text == "fake fallback\n"
    assert get(fake.nginx, "/bare503-never-cached").status_code == 502  # nothing to fall back on


def test_an_expired_page_is_served_stale_while_one_request_refreshes_it(fake):
    """The recipe's tail under load rests on this: at each 5 s expiry nobody waits for fallback but the one request
    that refreshes the page (proxy_cache_use_stale updating); a slow fallback shows who waited."""
    path = f"/slower503-{uuid.uuid4().hex[:8]}"
    assert get(fake.nginx, path).headers["X-Cache-Status"] == "MISS"
    time.sleep(6.1)  # past the 5 seconds (whole seconds to nginx)

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: get(fake.nginx, path), range(10)))
    assert {answer.status_code for answer in answers} == {503}
    caches = [answer.headers["X-Cache-Status"] for answer in answers]
    # One refresh; the others got the stale copy (or, arriving after the refresh, the new one).
    assert caches.count("EXPIRED") == 1 and "UPDATING" in caches and set(caches) <= {"EXPIRED", "UPDATING", "HIT"}
    # Timed by nginx itself ($request_time), not by this busy test process: fallback sleeps 2 s before answering,
    # so a request that waited for it took that long, and one given the stale copy never reached it and took less.
    updating = [line for line in fake.nginx.log_lines(path, 11) if "cache=UPDATING" in line]
    assert len(updating) == caches.count("UPDATING"), updating
    assert not any(reached([line], fake.port) for line in updating), updating
    assert all(float(line.rsplit("took=", 1)[1]) < 2.0 for line in updating), updating
    assert fake.server.hits.count(path) == 2


def test_a_probe_through_nginx_that_lands_on_fallback_during_an_outage_is_reported_as_reaching_fallback_itself(
    main_site, nginx, fallback_env, set_mode
):
    from fallback.checking.probe import probe
    from fallback.checking.selfprobe import probe_key

    key = probe_key(fallback_env["FALLBACK_SECRET_KEY"])
    path = fresh("/probed")
    assert probe(nginx.url + path, 5, self_key=key).ok  # the main site answers: an ordinary good probe
    set_mode("down")
    main_site.stop()
    assert get(nginx, path).status_code == 503  # a visitor's page, now in the micro-cache
    for _ in range(2):  # the second, too: no probe's answer was cached for the next
        result = probe(nginx.url + path, 5, self_key=key)
        assert result.self_probe and result.status == 503
    assert get(nginx, path).headers["X-Cache-Status"] == "HIT"  # the probe neither read nor replaced the cache
    assert "Fallback-Probe-Mark" not in get(nginx, path).headers
