"""The CLI's way to a running instance: its control API over HTTP(S), for `status`, `mode`, `export --url`
and the probe agent's reports (`fallback probe --report-to`).

An operator switches a PaaS instance from a laptop this way: a one-off container's disk is not the app's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # requests is imported only when a command talks to an instance: the others start faster
    import requests

API_PATH = "/_fallback/api/v1/"
# Connecting should be quick; reading a page of leads may take a while on a busy database.
TIMEOUT = (5.0, 30.0)
PAGE = 1000


class RemoteError(Exception):
    """The instance could not be reached, refused the token, or refused the request: one line saying which."""


class Unreachable(RemoteError):
    """The instance could not answer now (no connection, a timeout, a 5xx, a 408 or a 429): worth trying again.

    `retry_after` is the instance's own Retry-After, in seconds, when it sent one.
    """

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class NoApi(RemoteError):
    """A 404 that is not the API's own: no control API at that URL (it is off there, or the URL is not fallback's)."""


# Answers that say "not now" rather than "not this": a proxy's 502/503/504, a busy or restarting instance.
RETRYABLE = frozenset({408, 429})


def retry_after(response: requests.Response) -> float | None:
    """The Retry-After header in seconds, when it is a number (the API sends numbers)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def seconds_text(duration: timedelta) -> str:
    """A duration as the API's parser reads it, in seconds: `5400s`."""
    seconds = duration.total_seconds()
    return f"{int(seconds) if seconds.is_integer() else seconds}s"


class Remote:
    """One running instance's control API, at `url` with `token`."""

    def __init__(
        self,
        url: str,
        token: str | None,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = TIMEOUT,
    ):
        if not token:
            raise RemoteError("--url needs FALLBACK_API_TOKEN: the control API's bearer token")
        import requests

        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, route: str, **kwargs: Any) -> Any:
        """The JSON answer of one API request, or RemoteError with the instance's own words."""
        import requests

        target = self.url + API_PATH + route
        try:
            response = self.session.request(method, target, timeout=self.timeout, allow_redirects=False, **kwargs)
        except requests.RequestException as error:
            raise Unreachable(f"could not reach {self.url}: {type(error).__name__}") from None
        if response.status_code == 401:
            raise RemoteError(f"{self.url} refused the token (401): check FALLBACK_API_TOKEN")
        if response.status_code == 404 and "problem" not in response.headers.get("Content-Type", ""):
            raise NoApi(f"no control API at {self.url} (404): is FALLBACK_API_TOKEN set on that instance?")
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.ok and body is not None:
            return body
        detail = body.get("detail") if isinstance(body, dict) else None
        if response.status_code >= 500 or response.status_code in RETRYABLE:
            message = f"{self.url} answered {response.status_code}: {detail or response.reason}"
            raise Unreachable(message, retry_after(response))
        if body is None:
            raise RemoteError(f"{self.url} answered {response.status_code} and no JSON: is it fallback?")
        raise RemoteError(f"{self.url} answered {response.status_code}: {detail or response.reason}")

    def status(self) -> dict[str, Any]:
        """The full status document."""
        return self.call("GET", "status")

    def set_mode(self, mode: str, duration: timedelta | None, reason: str | None) -> dict[str, Any]:
        """Set the mode, as `PUT mode`; the new flag."""
        body: dict[str, Any] = {"mode": mode}
        if duration:
            body["for"] = seconds_text(duration)
        if reason:
            body["reason"] = reason
        return self.call("PUT", "mode", json=body)

    def report_verdict(self, verdict: dict[str, Any]) -> dict[str, Any]:
        """Post a probe agent's verdict, as `POST verdicts`; the stored verdict and the instance's interval."""
        return self.call("POST", "verdicts", json=verdict)

    def leads(self, since: datetime | None, until: datetime | None) -> Iterator[dict[str, Any]]:
        """Every genuine lead last sent from `since` until `until` (exclusive), oldest first, a page at a time."""
        params: dict[str, Any] = {"limit": PAGE}
        if since:
            params["since"] = since.isoformat()
        while True:
            page = self.call("GET", "leads", params=params)
            for lead in page["leads"]:
                # The API has no upper bound: the export's `until` is applied here, as the export compares it.
                if until is None or datetime.fromisoformat(lead["updated_at"]) < until:
                    yield lead
            if not page["next"]:
                return
            params["cursor"] = page["next"]
