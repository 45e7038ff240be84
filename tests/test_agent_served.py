"""`fallback probe --report-to`: real agent processes on 127.0.0.1 against a real `fallback serve` and a stand-in
main site; what arrives in the instance's database, and how the agent behaves when fallback is away."""

from __future__ import annotations

import signal
import socket
import threading
import time
from contextlib import closing

import pytest
import requests
from helpers import wait_for
from procs import HOST, exited
from served import Agent, Served, run_cli
from standin import StandIn

from fallback.checking.vantage import MAX_BODY
from fallback.storage import open_storage

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

TOKEN = "agent-integration-token-01"


def instance_env(main_site: StandIn) -> dict:
    """An instance whose own checker probes the stand-in every second, with the control API on."""
    return {
        "FALLBACK_MAIN_URL": "https://www.example.com",
        "FALLBACK_CHECK_URLS": main_site.url,
        "FALLBACK_API_TOKEN": TOKEN,
        "FALLBACK_CHECK_INTERVAL": "1",
        "FALLBACK_QUORUM": "2",
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory, main_site):
    """One instance for the module, its SQLite database in a folder of its own."""
    with Served(instance_env(main_site), tmp_path_factory.mktemp("instance"), workers=1) as server:
        yield server


@pytest.fixture(scope="module")
def instance_storage(served):
    """The instance's database, as the test reads it."""
    store = open_storage(str(served.cwd / "fallback.db"))
    yield store
    store.close()


@pytest.fixture
def agents(tmp_path):
    """Start agents with `agents(report_to, site_url, *args)`; every one left running is stopped after the test."""
    started: list[Agent] = []

    def start(report_to: str, site_url: str, *args: str, **kwargs) -> Agent:
        agent = Agent(tmp_path, report_to, site_url, *args, **{"token": TOKEN, **kwargs})
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop(signal.SIGKILL)


def verdict_of(instance_storage, name: str):
    """The stored verdict of `name`, or None."""
    return next((verdict for verdict in instance_storage.verdicts.latest() if verdict.name == name), None)


class Closer:
    """A listening socket on 127.0.0.1 that accepts each connection and closes it at once, noting when."""

    def __init__(self):
        self.sock = socket.create_server((HOST, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[float] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted.append(time.monotonic())
            connection.close()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(2)
        self.sock.close()


def test_an_agents_verdict_arrives_and_a_refusing_main_site_is_reported_down_after_fall_rounds(
    served, instance_storage, agents, tmp_path
):
    name = "refusing site probe"
    with StandIn() as own_site:
        agent = agents(served.url, own_site.url, "--name", name)
        up = wait_for(lambda: (v := verdict_of(instance_storage, name)) and v.state == "up" and v, 20, "an up verdict")
        assert up.kind == "agent" and up.ok and "answered" in up.reason
        own_site.stop()  # connections refused from now on
        seen = []

        def down():
            verdict = verdict_of(instance_storage, name)
            if verdict and (not seen or seen[-1] != (verdict.state, verdict.ok, verdict.observed_at)):
                seen.append((verdict.state, verdict.ok, verdict.observed_at))
            return verdict and verdict.state == "down" and verdict

        reported = wait_for(down, 20, "a down verdict")
    assert "connection refused" in reported.reason and not reported.ok
    failing_while_up = [entry for entry in seen if entry[:2] == ("up", False)]
    assert failing_while_up, f"no failed round was reported before down: {seen}"
    # FALL=3: two failed rounds (0.25 s apart, the quick re-check) before the third says down.
    assert (reported.observed_at - failing_while_up[0][2]).total_seconds() >= 0.4
    assert not exited(agent.process.pid)
    assert "main site down from here" in agent.output()
    assert agent.stop() == 0


def test_a_restarted_agent_keeps_one_row_under_its_default_name(served, instance_storage, agents, main_site):
    name = f"{socket.gethostname()} probe"
    first = agents(served.url, main_site.url)
    stored = wait_for(lambda: verdict_of(instance_storage, name), 20, "the first agent's verdict")
    assert first.stop(signal.SIGTERM) == 0
    assert "stopping on SIGTERM" in first.output()
    second = agents(served.url, main_site.url)
    wait_for(
        lambda: (v := verdict_of(instance_storage, name)) and v.received_at > stored.received_at, 20, "a new verdict"
    )
    assert [verdict.name for verdict in instance_storage.verdicts.latest()].count(name) == 1
    assert second.stop(signal.SIGINT) == 0


def test_a_wrong_token_stops_the_agent_with_one_line_and_exit_2(served, main_site, tmp_path):
    result = run_cli(
        ["probe", "--report-to", served.url, "--token", "wrong"], {"FALLBACK_MAIN_URL": main_site.url}, tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: {served.url} refused the token (401): check FALLBACK_API_TOKEN"
    )
    assert "Traceback" not in result.stderr


def test_an_instance_without_the_api_stops_the_agent_with_exit_2(main_site, tmp_path):
    with Served(
        {"FALLBACK_MAIN_URL": "https://www.example.com", "FALLBACK_CHECK_URLS": main_site.url}, tmp_path
    ) as bare:
        result = run_cli(
            ["probe", "--report-to", bare.url, "--token", TOKEN], {"FALLBACK_MAIN_URL": main_site.url}, tmp_path
        )
    assert result.returncode == 2 and "no control API" in result.stderr and "Traceback" not in result.stderr


def test_against_a_dead_fallback_it_keeps_probing_backs_off_and_reports_once_fallback_is_up(agents, tmp_path):
    closer = Closer()
    port = closer.port
    # A main site of its own, probed every second: its hits are then this agent's alone, whatever other tests
    # of the module (and the module's instance, probing the shared stand-in) run on this worker meanwhile.
    with StandIn() as own_site:
        interval = {"FALLBACK_CHECK_INTERVAL": "1"}
        agent = agents(f"http://{HOST}:{port}", own_site.url, "--name", "patient probe", settings=interval)
        try:
            time.sleep(6.5)
        finally:
            closer.close()
        attempts = closer.accepted
        gaps = [later - earlier for earlier, later in zip(attempts, attempts[1:], strict=False)]
        # Waits of 0.5-1 s, 1-2 s, 2-4 s, 4-8 s: each at least as long as the one before, one request at a time.
        assert 3 <= len(attempts) <= 5, attempts
        assert gaps == sorted(gaps) and gaps[0] >= 0.45, gaps
        assert own_site.hits >= 5  # it went on probing the main site all along
        assert not exited(agent.process.pid)
        assert "could not reach" in agent.output()
        with (
            Served(instance_env(own_site), tmp_path, workers=1, port=port),
            closing(open_storage(str(tmp_path / "fallback.db"))) as instance_storage,
        ):
            wait_for(lambda: verdict_of(instance_storage, "patient probe"), 30, "the verdict after fallback came back")
    assert "again after" in agent.output()
    assert agent.stop() == 0


def test_an_oversized_chunked_body_is_refused_by_the_served_instance(served, instance_storage):
    body = iter([b'{"name": "big", "reason": "', b"x" * MAX_BODY, b'"}'])  # a generator: sent chunked
    with requests.Session() as session:
        session.trust_env = False  # loopback only, never through a proxy from the environment
        response = session.post(
            served.url + "/_fallback/api/v1/verdicts",
            data=body,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            timeout=10,
        )
    assert response.status_code == 413 and "at most" in response.json()["detail"]
    assert verdict_of(instance_storage, "big") is None


def test_with_a_quorum_of_two_the_agents_vote_is_needed_to_flip(agents, tmp_path):
    """An instance (interval 1 s, fall 2, FALLBACK_QUORUM=2) and one agent, each probing a main site of its own."""
    with StandIn() as instance_view, StandIn() as agent_view:
        env = {**instance_env(instance_view), "FALLBACK_FALL": "2", "FALLBACK_CHECK_TIMEOUT": "1"}
        with Served(env, tmp_path, workers=1) as served, closing(open_storage(str(tmp_path / "fallback.db"))) as db:
            agents(served.url, agent_view.url, "--name", "second network probe", fall=2)
            wait_for(lambda: db.flag.read().state == "up", 20, "the quorum saying up")
            instance_view.stop()  # only the instance's own view of the site breaks
            wait_for(
                lambda: (v := verdict_of(db, f"{socket.gethostname()}:{served.port}")) and v.state == "down",
                10,
                "the instance's down",
            )
            watched_until = time.monotonic() + 5  # longer than a verdict stays fresh (3 * 1 s + 1 s)
            while time.monotonic() < watched_until:
                assert db.flag.read().state == "up", "flipped on the instance's vote alone"
                time.sleep(0.1)
            agent_view.stop()  # now the agent's network sees it down too
            flag = wait_for(lambda: (f := db.flag.read()).state == "down" and f, 15, "the flip down")
    assert "quorum of 2" in flag.state_reason and "second network probe" in flag.state_reason
