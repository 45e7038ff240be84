"""The probe and the probe runner, against a stand-in main site on 127.0.0.1 that misbehaves on demand."""

from __future__ import annotations

import http.server
import threading
import time

import pytest
from helpers import self_signed_certificate
from standin import KEYWORD, StandIn

import fallback.checking.rounds as rounds_module
from fallback.checking.probe import MAX_REDIRECTS, probe
from fallback.checking.rounds import ProbeRunner
from fallback.checking.selfprobe import MARK_HEADER, REQUEST_HEADER, mark, probe_key

TIMEOUT = 1.0  # seconds: short, so the whole file stays fast
# How far past its deadline a probe may return: room for a busy machine's scheduling. A probe that ignored its
# deadline would still be caught, as every misbehaving stand-in keeps it busy for 30 s or more.
SLACK = 2.0
JOIN = 5.0  # the most a test waits for a thread it started

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Every request goes straight to 127.0.0.1, never through a proxy from the environment."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(autouse=True)
def no_thread_left(site):
    """Afterwards, once the stand-in main site is stopped, no stand-in thread and no probe thread is left behind."""
    started: list[threading.Thread] = []
    site.probe_threads = started
    yield
    site.stop()
    for thread in started + _runner_threads(site):
        thread.join(JOIN)
    assert not site.leftover_threads, "the stand-in left threads running"
    assert not [thread for thread in started + _runner_threads(site) if thread.is_alive()], (
        "a probe thread outlived the stand-in"
    )


def _runner_threads(site: StandIn) -> list[threading.Thread]:
    prefix = f"probe {site.url_for('')}"
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


def timed_probe(site: StandIn, url: str | None = None, timeout: float = TIMEOUT, **options):
    """Probe in a thread and wait at most timeout + SLACK: (the result or None if still running, seconds taken)."""
    box = {}

    def run():
        try:
            box["result"] = probe(url or site.url, timeout, **options)
        except Exception as error:  # noqa: BLE001 - reported by assert_in_time, not lost in a thread
            box["error"] = error

    thread = threading.Thread(target=run, daemon=True, name="timed probe")
    site.probe_threads.append(thread)
    started = time.monotonic()
    thread.start()
    thread.join(timeout + SLACK)
    elapsed = time.monotonic() - started
    if "error" in box:
        raise AssertionError(f"probe() raised instead of returning a result: {box['error']!r}")
    return box.get("result"), elapsed


def assert_in_time(result, elapsed: float, timeout: float = TIMEOUT):
    assert result is not None, f"the probe was still running {timeout + SLACK:g}s after it started"
    assert elapsed < timeout + SLACK, f"the probe took {elapsed:.2f}s"


# What a healthy site looks like.


def test_it_passes_a_site_that_answers_with_the_expected_text(site):
    result, elapsed = timed_probe(site, expect_text=KEYWORD)

    assert_in_time(result, elapsed)
    assert result.ok, result.reason
    assert (result.status, result.reason, result.url) == (200, "ok", site.url)
    assert 0 <= result.latency < TIMEOUT


def test_it_sends_no_cache_and_its_own_user_agent(site):
    result, _ = timed_probe(site)

    assert result.ok, result.reason
    assert site.last_headers["Cache-Control"] == "no-cache"
    assert site.last_headers["User-Agent"].startswith("fallback-healthcheck/")


def test_it_follows_a_redirect_to_a_page_that_passes(site):
    site.behaviour = "redirect"

    result, elapsed = timed_probe(site, expect_text=KEYWORD)

    assert_in_time(result, elapsed)
    assert result.ok, result.reason
    assert result.status == 200
    assert site.paths == ["/", "/as/ok"]


def test_it_passes_a_slow_answer_that_is_within_the_latency_limit(site):
    site.behaviour, site.delay = "slow", 0.2

    # A limit far above the delay: a busy machine may add to the latency the probe measures.
    result, elapsed = timed_probe(site, timeout=5.0, max_latency=4.0, expect_text=KEYWORD)

    assert_in_time(result, elapsed, 5.0)
    assert result.ok, result.reason
    assert result.latency >= 0.2


# Sites that answer, but wrongly.


def test_it_fails_a_site_that_answers_503_and_says_so(site):
    site.behaviour = "error"

    result, elapsed = timed_probe(site, expect_text=KEYWORD)

    assert_in_time(result, elapsed)
    assert not result.ok
    assert result.status == 503
    assert "HTTP 503" in result.reason


def test_it_fails_a_page_without_the_expected_text(site):
    site.behaviour = "nokeyword"

    result, elapsed = timed_probe(site, expect_text=KEYWORD)

    assert_in_time(result, elapsed)
    assert not result.ok
    assert result.status == 200
    assert KEYWORD in result.reason and "missing" in result.reason


def test_it_fails_a_site_slower_than_the_latency_limit_as_too_slow(site):
    site.behaviour, site.delay = "slow", 0.6

    result, elapsed = timed_probe(site, timeout=2.0, max_latency=0.3, expect_text=KEYWORD)

    assert_in_time(result, elapsed, 2.0)
    assert not result.ok
    assert result.reason.startswith("too slow"), result.reason


def test_it_fails_a_redirect_loop_within_the_deadline_and_blames_the_redirects(site):
    site.behaviour = "redirect_loop"

    result, elapsed = timed_probe(site, expect_text=KEYWORD)

    assert_in_time(result, elapsed)
    assert not result.ok
    assert "redirects" in result.reason
    assert site.hits == MAX_REDIRECTS + 1


# Sites that do not answer, or never finish answering.


def test_it_fails_a_site_that_refuses_connections(site):
    site.stop()

    result, elapsed = timed_probe(site, expect_text=KEYWORD)

    assert_in_time(result, elapsed)
    assert not result.ok
    assert result.status is None
    assert result.reason.startswith("connection failed"), result.reason
    assert site.hits == 0


def test_it_passes_the_site_again_once_it_listens_again_on_the_same_port(site):
    url = site.url
    site.stop()
    refused, _ = timed_probe(site, url)
    site.start()

    result, elapsed = timed_probe(site, url, expect_text=KEYWORD)

    assert not refused.ok
    assert_in_time(result, elapsed)
    assert result.ok, result.reason


def test_it_fails_a_site_that_accepts_and_never_answers_within_the_timeout(site):
    site.behaviour = "hang"

    result, elapsed = timed_probe(site, expect_text=KEYWORD)

    assert_in_time(result, elapsed)
    assert not result.ok
    assert result.status is None
    assert f"{TIMEOUT:g}s" in result.reason
    assert site.hits == 1


def test_it_fails_a_site_that_trickles_its_body(site):
    site.behaviour = "trickle"  # one byte every 0.5 s

    result, elapsed = timed_probe(site, expect_text=KEYWORD)

    assert_in_time(result, elapsed)
    assert not result.ok
    assert f"{TIMEOUT:g}s" in result.reason


def test_it_fails_a_site_that_stalls_after_its_headers_instead_of_raising(site):
    site.behaviour, site.trickle_interval = "trickle", 5.0  # headers, then nothing for 5 s

    result, elapsed = timed_probe(site, expect_text=KEYWORD)

    assert_in_time(result, elapsed)
    assert not result.ok
    assert f"{TIMEOUT:g}s" in result.reason


def test_it_fails_a_site_that_drops_the_connection_mid_body_instead_of_raising(site):
    site.behaviour = "truncated"

    result, elapsed = timed_probe(site, expect_text=KEYWORD)

    assert_in_time(result, elapsed)
    assert not result.ok
    assert result.reason != "ok"


def test_it_gives_up_on_a_body_whose_bytes_come_just_inside_the_read_timeout(site):
    site.behaviour, site.trickle_interval = "trickle", 1.0

    result, elapsed = timed_probe(site, timeout=1.2, expect_text=KEYWORD)

    assert_in_time(result, elapsed, 1.2)
    assert not result.ok


def test_it_gives_up_on_a_header_block_that_arrives_slowly(site):
    site.behaviour = "huge_headers"  # a 1 KB header line every 0.2 s, for up to 30 s

    result, elapsed = timed_probe(site, expect_text=KEYWORD)

    assert_in_time(result, elapsed)
    assert not result.ok


def test_it_fails_a_header_line_over_100_kb_within_the_deadline(site):
    site.behaviour = "long_header"

    result, elapsed = timed_probe(site, expect_text=KEYWORD)

    assert_in_time(result, elapsed)
    assert not result.ok
    assert result.status is None


def test_it_returns_within_the_deadline_from_an_endless_body(site):
    site.behaviour = "endless"

    result, elapsed = timed_probe(site, expect_text=KEYWORD)

    assert_in_time(result, elapsed)
    # Passing on the first megabyte is as fine as failing: returning is what matters.
    assert (result.ok and result.status == 200) or (not result.ok and result.reason != "ok")


# The runner, which must come back on time whatever the probes do.


def test_the_runner_returns_every_result_within_the_deadline_when_one_site_hangs(site):
    urls = [site.url_for("/as/hang"), site.url_for("/as/ok"), site.url_for("/as/error")]
    runner = ProbeRunner(TIMEOUT, None, KEYWORD)

    started = time.monotonic()
    hang, ok, error = runner.run(urls)
    elapsed = time.monotonic() - started

    assert elapsed < TIMEOUT + SLACK
    assert [hang.url, ok.url, error.url] == urls
    assert not hang.ok and f"{TIMEOUT:g}s" in hang.reason
    assert ok.ok, ok.reason
    assert not error.ok and error.status == 503


def test_the_runner_returns_within_its_deadline_even_when_the_probe_itself_overruns(site):
    site.behaviour = "huge_headers"  # keeps the probe thread busy far beyond its timeout
    runner = ProbeRunner(TIMEOUT, None, KEYWORD)

    started = time.monotonic()
    [result] = runner.run([site.url])
    elapsed = time.monotonic() - started

    assert elapsed < TIMEOUT + SLACK  # the runner's own bound is timeout + 0.5 s
    assert not result.ok
    assert f"{TIMEOUT:g}s" in result.reason


def test_a_second_run_while_the_first_probe_hangs_reports_still_hanging_instead_of_probing_again(site):
    site.behaviour = "hang"
    timeout = 3.0  # longer than the others: a second run that waited for the first would take most of it
    runner = ProbeRunner(timeout, None, KEYWORD)
    first: list = []
    running = threading.Thread(target=lambda: first.extend(runner.run([site.url])), daemon=True)
    running.start()
    assert site.wait_for_hits(1, timeout=timeout), "the first probe never reached the site"

    started = time.monotonic()
    [second] = runner.run([site.url])
    elapsed = time.monotonic() - started
    running.join(timeout + SLACK + JOIN)

    assert elapsed < timeout / 2
    assert not second.ok
    assert "still hanging" in second.reason
    assert site.hits == 1, "the second run stacked another probe on the hanging one"
    assert len(first) == 1 and not first[0].ok


def test_after_an_abandoned_probe_the_next_run_says_still_hanging_and_the_one_after_it_probes_again(site, monkeypatch):
    # A probe that outlives the runner's wait, the way a stuck DNS look-up would, until `release` is set.
    release = threading.Event()
    real_probe = probe

    def stuck_probe(*args, **kwargs):
        result = real_probe(*args, **kwargs)
        release.wait(JOIN)
        return result

    monkeypatch.setattr(rounds_module, "probe", stuck_probe)
    site.behaviour = "hang"
    runner = ProbeRunner(TIMEOUT, None, KEYWORD)
    try:
        started = time.monotonic()
        [abandoned] = runner.run([site.url])
        first_elapsed = time.monotonic() - started
        [still] = runner.run([site.url])
        hits_while_stuck = site.hits
    finally:
        release.set()
    for thread in _runner_threads(site):
        thread.join(JOIN)
    site.behaviour = "ok"
    [again] = runner.run([site.url])

    assert first_elapsed < TIMEOUT + SLACK
    assert not abandoned.ok
    assert not still.ok and "still hanging" in still.reason
    assert hits_while_stuck == 1
    assert again.ok, again.reason
    assert site.hits == 2


@pytest.fixture
def tls_site(tmp_path):
    """An HTTPS stand-in on 127.0.0.1 with a self-signed certificate: TLS that must not be trusted."""
    import http.server
    import ssl

    cert, key = self_signed_certificate(tmp_path, days=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "7")
            self.end_headers()
            self.wfile.write(b"Welcome")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def test_it_fails_a_site_with_an_untrusted_certificate(tls_site):
    started = time.monotonic()
    result = probe(tls_site, timeout=TIMEOUT, max_latency=None, expect_text="Welcome")
    assert time.monotonic() - started < TIMEOUT + SLACK
    assert not result.ok
    assert result.reason.startswith("TLS error")


# A probe that reaches fallback itself (fallback.selfprobe).


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers 503 like fallback's page, marking the answer to a probe's challenge with the server's key."""

    key = b""

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):  # noqa: N802 - the base class's name
        self.send_response(503)
        challenge = self.headers.get(REQUEST_HEADER)
        if challenge is not None:
            self.send_header(MARK_HEADER, mark(self.server.key, challenge))
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def echoing():
    """A stand-in for fallback itself on 127.0.0.1, marking its answers with probe_key("installation key")."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    server.key = probe_key("installation key")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(JOIN)


def test_a_probe_answered_with_its_installations_mark_fails_as_reaching_fallback_itself(echoing):
    result = probe(echoing, TIMEOUT, self_key=probe_key("installation key"))

    assert not result.ok and result.self_probe
    assert result.reason == "reached fallback itself: the main site needs an origin hostname of its own"
    assert result.status == 503


def test_another_installations_mark_is_an_ordinary_failure(echoing):
    result = probe(echoing, TIMEOUT, self_key=probe_key("another installation"))

    assert not result.self_probe and result.reason == "HTTP 503"


def test_a_probe_sends_a_fresh_challenge_each_time_and_none_without_a_key(site):
    key = probe_key("installation key")
    challenges = []
    for _ in range(2):
        assert probe(site.url, TIMEOUT, self_key=key).ok
        challenges.append(site.last_headers[REQUEST_HEADER])
    assert len(set(challenges)) == 2 and all(challenges)
    probe(site.url, TIMEOUT)
    assert REQUEST_HEADER not in site.last_headers
