"""The probe agent, `fallback probe --report-to URL`: a vantage point in another network (FALLBACK_QUORUM).

It probes the check URLs with the checker's own rules (the same ProbeRunner, `decide()` with its fall/rise
hysteresis and quick re-check, the control URL) and posts each round's verdict to a fallback's API.

One thread does everything in turn: a round when one is due, then a post when one is due. So there is never
more than one request to fallback in flight and nothing queues: a verdict not yet posted is replaced by the
next round's. While fallback cannot be reached the agent keeps probing (its streaks stay current) and tries
again after a doubling, jittered wait. A refused token or request is a configuration error: it stops with
RemoteError, which the CLI prints as one line with exit status 2. A bare 404 is one too, until the agent has
once reported: after that it is a platform's router during a deploy, and the agent retries as if unreachable.
"""

from __future__ import annotations

import logging
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from fallback.checking.decision import Tally, decide
from fallback.checking.rounds import ProbeRunner, probe_round
from fallback.checking.vantage import clip_reason, name_problem
from fallback.core.clock import utcnow
from fallback.core.parsers import url
from fallback.core.redact import redact_url
from fallback.core.remote import NoApi, Remote, Unreachable
from fallback.core.settings import Settings

log = logging.getLogger("fallback.agent")

BACKOFF_FIRST = 1.0
# Short enough that an agent is counted again within half a minute of fallback coming back.
BACKOFF_CAP = 30.0
# Connect, then read: a post is small and the API answers at once; a slower fallback is an unreachable one.
POST_TIMEOUT = (3.0, 10.0)


class Reporter(Protocol):
    """Where verdicts go: fallback.remote.Remote, or a fake in tests."""

    url: str

    def report_verdict(self, verdict: dict[str, Any]) -> dict[str, Any]:
        """Post one verdict; the instance's answer, Unreachable to try again later, RemoteError to stop."""
        ...


def default_name() -> str:
    """The host name plus " probe": stable across restarts, apart from an instance on the same host."""
    return f"{socket.gethostname()} probe"


def backoff(failures: int, rand: Callable[[], float] = random.random) -> float:
    """The wait after `failures` failed posts in a row: doubling from BACKOFF_FIRST up to BACKOFF_CAP, its upper
    half random, so that agents that lost fallback together do not all come back in the same second."""
    ceiling = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** min(failures - 1, 16))
    return ceiling / 2 * (1 + rand())


class Agent:
    """One probe agent's loop: probe, decide, post the latest verdict; everything it keeps is a few fields."""

    def __init__(
        self,
        settings: Settings,
        reporter: Reporter,
        name: str,
        runner: ProbeRunner,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ):
        self.settings, self.reporter, self.name, self.runner = settings, reporter, name, runner
        self.clock, self.rand = clock, rand
        self.interval = settings.check_interval  # until the instance says its own
        self.tally = Tally()
        self.latest: dict[str, Any] | None = None  # the verdict not yet posted: only ever the latest one
        self.state: str | None = None  # the last state logged
        self.failures = 0  # failed posts in a row
        self.reachable: bool | None = None  # the last reachability logged
        self.reported = False  # whether the instance ever took a verdict: a later bare 404 is then transient
        self.next_round = self.next_post = clock()

    def step(self) -> float:
        """Probe if a round is due, post if a post is due; how long to wait before the next thing to do."""
        if self.clock() >= self.next_round:
            self.next_round = self.clock() + self.probe()
        if self.latest is not None and self.clock() >= self.next_post:
            self.post()
        due = self.next_round if self.latest is None else min(self.next_round, self.next_post)
        return max(0.0, due - self.clock())

    def probe(self) -> float:
        """One round: probe, decide with this vantage point's own hysteresis, keep the verdict; the next delay."""
        main, control = probe_round(self.runner, self.settings)
        decision = decide(self.tally, main, control, self.settings.fall, self.settings.rise, self.interval)
        self.tally = decision.tally
        state = decision.vote
        if state != self.state:
            level = logging.WARNING if state == "down" else logging.INFO
            judged = f"{state} from here"
            if state == "unknown" and not decision.network_doubt:
                judged = "not judged from here yet"
            log.log(level, "main site %s: %s", judged, decision.reason)
            self.state = state
        self.latest = {
            "name": self.name,
            "state": state,
            "ok": decision.passed,
            "reason": clip_reason(decision.reason),
            "at": utcnow().isoformat(),
        }
        return decision.next_check_in

    def post(self) -> None:
        """Post the latest verdict once; on failure, the next try after a backoff (RemoteError stops the agent)."""
        assert self.latest is not None
        try:
            answer = self.reporter.report_verdict(self.latest)
        except (Unreachable, NoApi) as error:
            if isinstance(error, NoApi) and not self.reported:
                raise  # never reached: the URL is wrong, or the API is off there
            retry_after = error.retry_after if isinstance(error, Unreachable) else None
            self.failures += 1
            wait = max(backoff(self.failures, self.rand), min(retry_after or 0.0, BACKOFF_CAP))
            self.next_post = self.clock() + wait
            if self.reachable is not False:
                log.warning("%s; probing on, posting again with backoff (at most %g s apart)", error, BACKOFF_CAP)
                self.reachable = False
            return
        self.latest = None
        self.reported = True
        if self.reachable is not True:
            again = f" again after {self.failures} failed attempt(s)" if self.reachable is False else ""
            log.info("reported to %s as %r%s", redact_url(self.reporter.url), self.name, again)
            self.reachable = True
        self.failures = 0
        self.follow(answer)

    def follow(self, answer: object) -> None:
        """Probe at the instance's interval: its verdicts are fresh for three of them, not three of ours."""
        interval = answer.get("check_interval") if isinstance(answer, dict) else None
        if isinstance(interval, (int, float)) and not isinstance(interval, bool) and interval > 0:
            if interval != self.interval:
                log.info("following %s's check interval: %g s", redact_url(self.reporter.url), interval)
                self.interval = float(interval)

    def run(self, stop: threading.Event) -> None:
        """Loop until `stop` is set."""
        while not stop.is_set():
            stop.wait(self.step())


def run_agent(settings: Settings, report_to: str, token: str | None, name: str | None) -> None:
    """`fallback probe`: run an agent until SIGTERM or SIGINT (then return: exit 0); RemoteError on a refusal."""
    if not settings.check_urls:
        raise ValueError("set FALLBACK_MAIN_URL or FALLBACK_CHECK_URLS: the URLs this agent probes")
    try:
        report_to = url(report_to)
    except ValueError as error:
        raise ValueError(f"--report-to: expected {error}") from None
    if not token:
        raise ValueError("--report-to needs the instance's API token: --token, or FALLBACK_API_TOKEN")
    name = default_name() if name is None else name
    problem = name_problem(name)
    if problem:
        raise ValueError(f"--name: {problem}")
    import requests

    from fallback.checking.selfprobe import probe_key

    session = requests.Session()
    reporter = Remote(report_to, token, session, timeout=POST_TIMEOUT)
    # With the installation's secret key, a check URL that reaches fallback itself fails as such.
    self_key = probe_key(settings.secret_key) if settings.secret_key else None
    runner = ProbeRunner(settings.check_timeout, settings.max_latency, settings.expect_text, self_key=self_key)
    agent = Agent(settings, reporter, name, runner)
    stop = threading.Event()

    def ask_to_stop(signum: int, frame: object) -> None:
        log.info("stopping on %s", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, ask_to_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    urls = len(settings.check_urls)
    log.info(
        "probe agent %r: %d check URL%s every %g s, reporting to %s",
        name,
        urls,
        "" if urls == 1 else "s",
        settings.check_interval,
        redact_url(reporter.url),
    )
    try:
        agent.run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        session.close()
