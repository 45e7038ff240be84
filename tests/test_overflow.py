"""The overflow recipes (deploy/haproxy/haproxy-overflow.cfg, deploy/nginx/fallback-overflow.conf) in a real proxy.

In front of a main site with a fixed capacity (tests/capacity_site.py: N requests at once, more make it slow
and then fail) and a real `fallback serve`, a spike of 10 x N visitors at once, each making a few requests:
- the main site never holds more than N requests at once;
- every visitor gets the main site or fallback's page, never an error;
- a visitor sent to the page can leave a lead through the proxy.
Everything listens on 127.0.0.1. Skipped when the proxy is missing, unless CI is set.
"""

from __future__ import annotations

import concurrent.futures
import os

import proxies
import pytest
import requests
from capacity_site import BODY, CapacitySite
from helpers import form_token
from proxies import DEPLOY, HAPROXY, NGINX, HAProxy, Nginx
from served import Served

pytestmark = pytest.mark.slow

CAPACITY = 4
VISITORS = 10 * CAPACITY
REQUESTS_EACH = 3
HOST = {"Host": "localhost"}


@pytest.fixture(scope="module")
def limited_site():
    """The main site, serving CAPACITY requests at once at most."""
    with CapacitySite(capacity=CAPACITY, work=0.1) as site:
        yield site


@pytest.fixture(scope="module")
def fallback(tmp_path_factory, limited_site):
    folder = tmp_path_factory.mktemp("overflow")
    env = proxies.fallback_env(folder, limited_site, "overflow-test-secret")
    # Behind the proxy the visitors' Host is the proxy's: the main URL names it, so fallback serves the page
    # to the overflow instead of redirecting it (FALLBACK_MAIN_URL's host is the site's own, as the recipes say).
    env["FALLBACK_MAIN_URL"] = "http://localhost"
    with Served(env, folder) as server:
        yield server


def is_the_page(response: requests.Response) -> bool:
    return response.status_code == 503 and 'name="email"' in response.text


def visit(url: str) -> list[str]:
    """One visitor: a few pages in a row, each answered by the main site, the page, or an error."""
    seen = []
    with requests.Session() as session:
        for number in range(REQUESTS_EACH):
            try:
                response = session.get(f"{url}/product/{number}", headers=HOST, timeout=30)
            except requests.RequestException as error:
                seen.append(f"error: {type(error).__name__}")
                continue
            if response.status_code == 200 and response.content == BODY:
                seen.append("main")
            elif is_the_page(response):
                seen.append("page")
            else:
                seen.append(f"error: {response.status_code} {response.text[:80]!r}")
    return seen


def spike(proxy_url: str, limited_site: CapacitySite) -> list[str]:
    limited_site.reset()
    with concurrent.futures.ThreadPoolExecutor(VISITORS) as pool:
        answers = [answer for visitor in pool.map(visit, [proxy_url] * VISITORS) for answer in visitor]
    return answers


def leave_a_lead(proxy_url: str) -> int:
    """A visitor who got the page leaves their address through the proxy: the status of the post."""
    with requests.Session() as session:
        for number in range(50):  # the main site has room again once the spike is over: fill it first
            with concurrent.futures.ThreadPoolExecutor(2 * CAPACITY) as pool:
                pages = list(
                    pool.map(
                        lambda n: session.get(f"{proxy_url}/sold-out/{n}", headers=HOST, timeout=30),
                        range(number, number + 2 * CAPACITY),
                    )
                )
            page = next((response for response in pages if is_the_page(response)), None)
            if page is not None:
                break
        assert page is not None, "no request was sent to fallback's page"
        posted = session.post(
            f"{proxy_url}/_fallback/contact",
            data={"email": "overflow@example.org", "consent": "y", "token": form_token(page.text), "path": "/sold-out"},
            headers=HOST,
            allow_redirects=False,
            timeout=10,
        )
        return posted.status_code


def check_spike(answers: list[str], limited_site: CapacitySite) -> None:
    errors = [answer for answer in answers if answer.startswith("error")]
    assert errors == [], errors[:5]
    assert len(answers) == VISITORS * REQUESTS_EACH
    assert limited_site.peak <= CAPACITY, f"the main site held {limited_site.peak} requests at once"
    assert limited_site.overloaded == 0
    # Both sides did their part: the main site served what it could, fallback the rest.
    assert answers.count("main") >= CAPACITY and answers.count("page") >= VISITORS


RECIPES = [
    pytest.param(HAProxy, HAPROXY, "haproxy/haproxy-overflow.cfg", id="haproxy"),
    pytest.param(Nginx, NGINX, "nginx/fallback-overflow.conf", id="nginx"),
]


@pytest.mark.parametrize(("proxy_class", "binary", "recipe"), RECIPES)
def test_the_proxy_sends_the_overflow_of_a_ten_fold_spike_to_fallback_and_nobody_sees_an_error(
    tmp_path, limited_site, fallback, proxy_class, binary, recipe
):
    if not binary.exists() and "CI" not in os.environ:
        pytest.skip(f"{binary} is not installed")
    upstreams = f"127.0.0.1:{limited_site.port}", f"127.0.0.1:{fallback.port}"
    with proxy_class(tmp_path, *upstreams, DEPLOY / recipe, MAIN_CAPACITY=str(CAPACITY)) as proxy:
        check_spike(spike(proxy.url, limited_site), limited_site)
        assert leave_a_lead(proxy.url) == 303
