"""The probe: one HTTP check of one URL, with a hard deadline for the whole exchange."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from fallback import __version__
from fallback.checking.selfprobe import MARK_HEADER, REQUEST_HEADER, is_marked, new_challenge
from fallback.checking.selfprobe import REASON as SELF_PROBE_REASON
from fallback.core.redact import redact_text, redact_url

MAX_REDIRECTS = 5
MAX_BODY_BYTES = 1024 * 1024
USER_AGENT = f"fallback-healthcheck/{__version__}"

Clock = Callable[[], float]


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What one probe found: whether it passed, how long it took, and why it failed.

    Its URL and reason are redacted as it is made: whatever shows a result (the stored probes and
    incidents, the log, notifications, the dashboard) never sees a URL's credentials or query.
    """

    url: str
    ok: bool
    latency: float
    status: int | None = None
    reason: str = "ok"

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", redact_text(self.reason, self.url))
        object.__setattr__(self, "url", redact_url(self.url))

    @property
    def self_probe(self) -> bool:
        """Whether the probe reached fallback itself instead of the main site."""
        return self.reason == SELF_PROBE_REASON


def probe(
    url: str,
    timeout: float = 3.0,
    max_latency: float | None = None,
    expect_text: str | None = None,
    clock: Clock = time.monotonic,
    self_key: bytes | None = None,
) -> ProbeResult:
    """Fetch `url` within `timeout` seconds in all (connect, redirects, headers, a bounded body).

    An answer slower than `max_latency` fails anyway, so the probe gives up at whichever comes first.
    With `self_key` (fallback.selfprobe.probe_key), an answer from this fallback itself fails as such.
    """
    budget = probe_budget(timeout, max_latency)
    started = clock()
    deadline = started + budget
    try:
        status, reason = _exchange(url, deadline, expect_text, clock, self_key)
    except requests.exceptions.SSLError as error:
        status, reason = None, f"TLS error: {short_error(error)}"
    except requests.exceptions.Timeout:
        status, reason = None, too_late(timeout, budget)
    except requests.exceptions.ConnectionError as error:
        status, reason = None, f"connection failed: {_connection_cause(error)}"
    except requests.exceptions.RequestException as error:
        status, reason = None, f"request failed: {short_error(error)}"
    latency = clock() - started
    if reason == "ok" and latency > budget and budget >= timeout:
        reason = too_late(timeout, budget)
    if reason == "ok" and max_latency is not None and latency > max_latency:
        reason = f"too slow: {latency:.2f}s (limit {max_latency:g}s)"
    return ProbeResult(url=url, ok=reason == "ok", latency=latency, status=status, reason=reason)


def probe_budget(timeout: float, max_latency: float | None) -> float:
    """How long a probe may take before it has certainly failed."""
    return min(timeout, max_latency) if max_latency else timeout


def too_late(timeout: float, budget: float) -> str:
    """Why a probe with no complete answer by its budget failed: the timeout, or the latency limit if sooner."""
    if budget < timeout:
        return f"too slow: no complete answer within {budget:g}s (the latency limit)"
    return f"no complete answer within {timeout:g}s"


class _RecordedHTTPConnection(HTTPConnection):
    """A connection that adds its socket to `sockets` once connected; each adapter subclasses it with its own list."""

    sockets: list[socket.socket]

    def connect(self) -> None:
        super().connect()
        self.sockets.append(self.sock)


class _RecordedHTTPSConnection(HTTPSConnection):
    """The same, for HTTPS."""

    sockets: list[socket.socket]

    def connect(self) -> None:
        super().connect()
        self.sockets.append(self.sock)


class _DeadlineAdapter(HTTPAdapter):
    """Remembers every socket it opens, so a watchdog can cut them all at the deadline."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        own = {"sockets": self.sockets}
        self.poolmanager.pool_classes_by_scheme = {
            "http": type(
                "Pool", (HTTPConnectionPool,), {"ConnectionCls": type("Conn", (_RecordedHTTPConnection,), own)}
            ),
            "https": type(
                "Pool", (HTTPSConnectionPool,), {"ConnectionCls": type("Conn", (_RecordedHTTPSConnection,), own)}
            ),
        }

    def cut(self) -> None:
        for sock in list(self.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _exchange(
    url: str, deadline: float, expect_text: str | None, clock: Clock, self_key: bytes | None
) -> tuple[int | None, str]:
    adapter = _DeadlineAdapter()
    watchdog = threading.Timer(max(0.0, deadline - clock()), adapter.cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        return _exchange_on(url, deadline, expect_text, clock, adapter, self_key)
    except requests.exceptions.RequestException:
        if clock() >= deadline:
            raise requests.exceptions.Timeout()
        raise
    finally:
        watchdog.cancel()


def _exchange_on(
    url: str, deadline: float, expect_text: str | None, clock: Clock, adapter: _DeadlineAdapter, self_key: bytes | None
) -> tuple[int | None, str]:
    headers = {"User-Agent": USER_AGENT, "Cache-Control": "no-cache", "Accept": "text/html,*/*;q=0.5"}
    challenge = new_challenge()
    if self_key:
        headers[REQUEST_HEADER] = challenge
    with requests.Session() as session:
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            remaining = deadline - clock()
            if remaining <= 0:
                raise requests.exceptions.Timeout()
            response = session.get(
                current, headers=headers, stream=True, allow_redirects=False, timeout=(remaining, remaining)
            )
            with response:
                # Any hop answered by fallback counts: while it shows its page, that hop would fail.
                if self_key and is_marked(self_key, challenge, response.headers.get(MARK_HEADER)):
                    return response.status_code, SELF_PROBE_REASON
                if response.is_redirect:
                    current = urljoin(current, response.headers["Location"])
                    continue
                status = response.status_code
                if not 200 <= status < 400:
                    return status, f"HTTP {status}"
                body = _read_body(response, deadline, clock)
                if body is None:
                    raise requests.exceptions.Timeout()
                if expect_text and expect_text not in body.decode(response.encoding or "utf-8", "replace"):
                    return status, f"expected text {expect_text!r} missing"
                return status, "ok"
        return None, f"more than {MAX_REDIRECTS} redirects"


def _read_body(response: requests.Response, deadline: float, clock: Clock) -> bytes | None:
    """Up to MAX_BODY_BYTES of the body, or None if the deadline passes first."""
    chunks, size = [], 0
    raw = response.raw
    while size < MAX_BODY_BYTES:
        if clock() > deadline:
            return None
        # read1: at most one socket read, so a trickling server cannot hold us past the deadline.
        try:
            chunk = raw.read1(65536, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError as error:
            raise requests.exceptions.ReadTimeout(error) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise requests.exceptions.ConnectionError(error) from error
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _connection_cause(error: Exception) -> str:
    """The root cause of a connection failure in a few words, not urllib3's nested retry message."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, urllib3.exceptions.NameResolutionError):
            return "DNS look-up failed"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, socket.timeout):
            return "connection timed out"
        nested = getattr(cause, "reason", None)
        cause = nested if isinstance(nested, BaseException) else (cause.__cause__ or cause.__context__)
    return short_error(error)


def short_error(error: Exception) -> str:
    """An error's message, cut at 200 characters."""
    text = str(error)
    return text if len(text) <= 200 else text[:197] + "..."
