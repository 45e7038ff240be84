"""The probe agent's loop (fallback/agent.py) with fakes and a fixed clock: its hysteresis, its backoff, what it
posts and when, what stops it, its log and its memory over a day of rounds."""

from __future__ import annotations

import logging
import socket
import tracemalloc

import pytest
import requests

from fallback.checking.agent import BACKOFF_CAP, Agent, backoff, default_name
from fallback.checking.decision import QUICK_RECHECK_SECONDS
from fallback.checking.probe import ProbeResult
from fallback.core.remote import NoApi, Remote, RemoteError, Unreachable
from fallback.core.settings import Settings

MAIN = "https://www.example.com/health"
CONTROL = "https://control.example.net/"


class Clock:
    """A monotonic clock that moves only when a test moves it."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Runner:
    """A ProbeRunner whose answers a test sets: `up` for the main site, `control_up` for the control URL."""

    def __init__(self):
        self.up, self.control_up, self.rounds = True, True, 0

    def run(self, urls, expect_text_for=None):
        self.rounds += 1
        ok = {url: self.control_up if url == CONTROL else self.up for url in urls}
        return [
            ProbeResult(url, ok[url], 0.01, 200 if ok[url] else None, "ok" if ok[url] else "HTTP 503") for url in urls
        ]


class Reporter:
    """A fallback instance as the agent sees it: answering, unreachable, or refusing; every post recorded."""

    url = "https://sorry.example.com"

    def __init__(self, monotonic: Clock):
        self.clock = monotonic
        self.mode = "answer"
        self.interval = 5.0
        self.retry_after: float | None = None
        self.posts: list[tuple[float, dict]] = []
        self.keep, self.count = True, 0  # a memory test keeps no record of its own

    def report_verdict(self, verdict):
        self.count += 1
        if self.keep:
            self.posts.append((self.clock(), dict(verdict)))
        if self.mode == "unreachable":
            raise Unreachable(f"could not reach {self.url}: ConnectionError", self.retry_after)
        if self.mode == "refuse":
            raise RemoteError(f"{self.url} refused the token (401): check FALLBACK_API_TOKEN")
        if self.mode == "no api":
            raise NoApi(f"no control API at {self.url} (404): is FALLBACK_API_TOKEN set on that instance?")
        return {**verdict, "kind": "agent", "check_interval": self.interval, "quorum": 2}


@pytest.fixture
def monotonic():
    return Clock()


@pytest.fixture
def probes():
    return Runner()


@pytest.fixture
def reporter(monotonic):
    return Reporter(monotonic)


def make_agent(monotonic, probes, reporter, rand=lambda: 1.0, **env) -> Agent:
    settings = Settings.from_env(
        {"FALLBACK_CHECK_URLS": MAIN, "FALLBACK_CHECK_INTERVAL": "5", "FALLBACK_FALL": "3", "FALLBACK_RISE": "2", **env}
    )
    return Agent(settings, reporter, "paris probe", probes, clock=monotonic, rand=rand)


def run_for(agent: Agent, monotonic: Clock, seconds: float) -> None:
    """Drive the agent's loop as `run` does, the clock jumping to each next thing to do."""
    until = monotonic.now + seconds
    while monotonic.now < until:
        monotonic.now += agent.step()


def states(reporter: Reporter) -> list[str]:
    return [body["state"] for _, body in reporter.posts]


def test_it_says_unknown_until_rise_passed_rounds_then_up(monotonic, probes, reporter):
    agent = make_agent(monotonic, probes, reporter)
    assert agent.step() == QUICK_RECHECK_SECONDS  # a first success while not yet up: look again soon
    monotonic.now += QUICK_RECHECK_SECONDS
    assert agent.step() == 5.0
    assert states(reporter) == ["unknown", "up"]
    assert [body["ok"] for _, body in reporter.posts] == [True, True]


def test_it_says_down_only_after_fall_failed_rounds_rechecking_quickly(monotonic, probes, reporter):
    agent = make_agent(monotonic, probes, reporter)
    run_for(agent, monotonic, 10)
    probes.up = False
    reporter.posts.clear()
    delays = []
    for _ in range(3):
        delays.append(agent.step())
        monotonic.now += delays[-1]
    assert states(reporter) == ["up", "up", "down"]
    assert [body["ok"] for _, body in reporter.posts] == [False, False, False]
    assert delays == [QUICK_RECHECK_SECONDS, QUICK_RECHECK_SECONDS, 5.0]
    assert reporter.posts[-1][1]["reason"] == f"{MAIN}: HTTP 503"


def test_while_its_own_network_is_in_doubt_it_says_unknown(monotonic, probes, reporter, caplog):
    caplog.set_level(logging.INFO, logger="fallback.agent")
    agent = make_agent(monotonic, probes, reporter, FALLBACK_CONTROL_URL=CONTROL)
    run_for(agent, monotonic, 10)
    probes.up = probes.control_up = False
    run_for(agent, monotonic, 30)
    assert set(states(reporter)[-5:]) == {"unknown"}
    assert "network in doubt" in reporter.posts[-1][1]["reason"]
    assert "main site unknown from here: network in doubt" in caplog.text
    probes.up = probes.control_up = True
    run_for(agent, monotonic, 10)
    assert states(reporter)[-1] == "up"  # its streaks were never counted as failures of the main site


def test_the_backoff_doubles_up_to_its_cap_with_the_upper_half_random():
    assert [backoff(n, lambda: 1.0) for n in range(1, 8)] == [1, 2, 4, 8, 16, BACKOFF_CAP, BACKOFF_CAP]
    assert [backoff(n, lambda: 0.0) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, BACKOFF_CAP / 2, BACKOFF_CAP / 2]
    assert backoff(10_000, lambda: 1.0) == BACKOFF_CAP  # no overflow after days of failures


def test_while_fallback_is_unreachable_it_keeps_probing_and_posts_further_and_further_apart(
    monotonic, probes, reporter
):
    agent = make_agent(monotonic, probes, reporter)
    run_for(agent, monotonic, 10)
    reporter.mode = "unreachable"
    reporter.posts.clear()
    rounds = probes.rounds
    run_for(agent, monotonic, 300)
    times = [at for at, _ in reporter.posts]
    gaps = [round(later - earlier, 6) for earlier, later in zip(times, times[1:], strict=False)]
    assert gaps[:6] == [1, 2, 4, 8, 16, BACKOFF_CAP]
    assert set(gaps[5:]) == {BACKOFF_CAP}
    assert probes.rounds - rounds == 60  # probing went on, every 5 s, whatever the posts did


def test_when_fallback_comes_back_it_posts_only_the_latest_verdict_once(monotonic, probes, reporter):
    agent = make_agent(monotonic, probes, reporter)
    run_for(agent, monotonic, 10)
    reporter.mode = "unreachable"
    run_for(agent, monotonic, 40)
    probes.up = False  # the main site breaks while fallback cannot hear of it
    run_for(agent, monotonic, 40)
    reporter.mode = "answer"
    reporter.posts.clear()
    run_for(agent, monotonic, BACKOFF_CAP)
    first_at, first = reporter.posts[0]
    assert first["state"] == "down" and first["ok"] is False
    assert first_at - monotonic.now <= 0
    # From then on, one post per round and no backlog of the verdicts it could not deliver.
    assert len(reporter.posts) <= BACKOFF_CAP / 5 + 1
    assert agent.failures == 0 and agent.latest is None


def test_a_retry_after_from_the_instance_is_waited_for(monotonic, probes, reporter):
    agent = make_agent(monotonic, probes, reporter)
    reporter.mode, reporter.retry_after = "unreachable", 20.0
    run_for(agent, monotonic, 60)
    times = [at for at, _ in reporter.posts]
    assert all(later - earlier >= 20.0 for earlier, later in zip(times, times[1:], strict=False))


def test_a_refused_report_stops_the_agent_with_the_instances_words(monotonic, probes, reporter):
    agent = make_agent(monotonic, probes, reporter)
    reporter.mode = "refuse"
    with pytest.raises(RemoteError, match=r"refused the token \(401\)"):
        agent.step()


def test_a_bare_404_before_any_report_stops_the_agent(monotonic, probes, reporter):
    agent = make_agent(monotonic, probes, reporter)
    reporter.mode = "no api"
    with pytest.raises(NoApi, match="no control API"):
        agent.step()


def test_a_bare_404_after_a_report_is_a_deploy_s_router_and_is_retried_with_backoff(monotonic, probes, reporter):
    agent = make_agent(monotonic, probes, reporter)
    run_for(agent, monotonic, 10)
    reporter.mode = "no api"
    reporter.posts.clear()
    run_for(agent, monotonic, 60)
    times = [at for at, _ in reporter.posts]
    gaps = [round(later - earlier, 6) for earlier, later in zip(times, times[1:], strict=False)]
    assert gaps[:4] == [1, 2, 4, 8]
    reporter.mode = "answer"
    run_for(agent, monotonic, BACKOFF_CAP + 5)
    assert agent.failures == 0 and agent.reachable is True


def test_it_follows_the_instances_check_interval(monotonic, probes, reporter):
    agent = make_agent(monotonic, probes, reporter)
    reporter.interval = 1.0
    run_for(agent, monotonic, 5)
    rounds = probes.rounds
    run_for(agent, monotonic, 20)
    assert probes.rounds - rounds == 20


def test_an_answer_without_an_interval_leaves_its_own(monotonic, probes, reporter):
    agent = make_agent(monotonic, probes, reporter)
    for answer in ([1, 2], {"check_interval": "fast"}, {"check_interval": 0}, {"check_interval": True}, {}):
        agent.follow(answer)
    assert agent.interval == 5.0


def test_it_logs_each_change_of_state_or_reachability_and_not_each_round(monotonic, probes, reporter, caplog):
    caplog.set_level(logging.INFO, logger="fallback.agent")
    agent = make_agent(monotonic, probes, reporter)
    run_for(agent, monotonic, 600)
    reporter.mode = "unreachable"
    run_for(agent, monotonic, 600)
    probes.up = False
    run_for(agent, monotonic, 600)
    reporter.mode = "answer"
    run_for(agent, monotonic, 600)
    lines = [record.getMessage() for record in caplog.records]
    assert probes.rounds > 400
    assert len(lines) == 6, lines
    assert lines[0].startswith("main site not judged from here yet")
    assert lines[1] == "reported to https://sorry.example.com as 'paris probe'"
    assert lines[2].startswith("main site up from here")
    assert lines[3].startswith("could not reach https://sorry.example.com: ConnectionError; probing on")
    assert lines[4].startswith("main site down from here: https://www.example.com/health: HTTP 503")
    assert lines[5].startswith("reported to https://sorry.example.com as 'paris probe' again after ")


@pytest.mark.slow  # a day of rounds under tracemalloc: about 20 s of CPU
def test_its_memory_stays_flat_over_a_day_of_rounds(monotonic, probes, reporter, monkeypatch):
    reporter.keep = False
    # Its log lines are made and handled, but not kept by pytest's capture, which is no part of the agent.
    logger = logging.getLogger("fallback.agent")
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "handlers", [logging.NullHandler()])
    agent = make_agent(monotonic, probes, reporter)
    run_for(agent, monotonic, 3600)  # warm up: every code path once
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for hour in range(24):  # a day at a 5 s interval, fallback unreachable half of the time
            reporter.mode = "unreachable" if hour % 2 else "answer"
            probes.up = hour % 3 != 0
            run_for(agent, monotonic, 3600)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert probes.rounds > 17_280 and reporter.count > 8_000
    assert grown < 16 * 1024, f"{grown} bytes more after a day of rounds"


def test_the_default_name_is_the_host_name_and_probe():
    assert default_name() == f"{socket.gethostname()} probe"


class Answering(requests.Session):
    """A session whose every request gets one canned answer, as an instance or a proxy in front of it gives."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]):
        super().__init__()
        self.status, self.body, self.canned_headers = status, body, headers

    def request(self, method, url, *args, **kwargs):
        response = requests.Response()
        response.status_code, response._content = self.status, self.body
        response.headers.update(self.canned_headers)
        response.reason, response.url = "Reason", url
        return response


PROBLEM = {"Content-Type": "application/problem+json"}


@pytest.mark.parametrize(
    ("status", "body", "headers", "retry_after"),
    [
        (503, b'{"detail": "the database is unavailable"}', {**PROBLEM, "Retry-After": "30"}, 30.0),
        (502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}, None),
        (429, b'{"detail": "too many wrong tokens"}', {**PROBLEM, "Retry-After": "12"}, 12.0),
    ],
)
def test_a_busy_or_missing_instance_is_unreachable_for_now(status, body, headers, retry_after):
    remote = Remote("https://sorry.example.com", "token", Answering(status, body, headers))
    with pytest.raises(Unreachable, match=f"answered {status}") as raised:
        remote.report_verdict({"name": "paris probe"})
    assert raised.value.retry_after == retry_after


@pytest.mark.parametrize(
    ("status", "body", "headers", "words"),
    [
        (401, b'{"detail": "a wrong token"}', PROBLEM, "refused the token (401)"),
        (400, b'{"detail": "name must not hold control characters"}', PROBLEM, "control characters"),
        (404, b"<html>Not Found</html>", {"Content-Type": "text/html"}, "no control API"),
        (301, b"", {"Location": "https://elsewhere.example.com/"}, "no JSON"),
    ],
)
def test_a_refusal_is_a_remote_error_that_stops_the_agent(status, body, headers, words):
    remote = Remote("https://sorry.example.com", "token", Answering(status, body, headers))
    with pytest.raises(RemoteError, match=words.replace("(", r"\(").replace(")", r"\)")) as raised:
        remote.report_verdict({"name": "paris probe"})
    assert not isinstance(raised.value, Unreachable)
