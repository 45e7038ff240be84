"""Prometheus metrics at `/_fallback/metrics`: what the processes counted, and what the database knows.

Two sources, each for what only it can tell:

- Counters of what happens inside a process (contact posts by outcome, probes and their durations,
  flips) use prometheus_client's multiprocess mode under `fallback serve`: each worker writes its
  counts to a memory-mapped file in a private folder (PROMETHEUS_MULTIPROC_DIR, set by
  fallback.server before the workers fork), and a scrape sums every file, those of dead workers
  included, so that totals hold over all workers and survive a worker's restart. The database
  could not give these: it keeps no invalid or limited post, and prunes probes after a day.
- The state and the queues are read from the database at each scrape: whether visitors are
  redirected, the checker's heartbeat, the follow-up mail and the webhooks (their tables). These are the
  database's, so every instance on one database shows the same values.

A visitor's page or redirect is not counted at all: SPEC does not ask for it, and the hot path stays
as it was (docs/monitoring.md has the measure).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from flask import Blueprint, Response, abort
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from fallback.checking.quorum import fresh_seconds
from fallback.core.clock import utcnow
from fallback.storage import Storage
from fallback.team.tokens import Refusal, bearer_token, check_secret
from fallback.web.runtime import runtime

if TYPE_CHECKING:
    from fallback.core.settings import Settings

PATH = "/_fallback/metrics"
# How webhook deliveries ended (the outbox's statuses): accepted, given up after 24 hours, refused by a 410 Gone,
# or not sent (their receiver gone, or no longer configured).
WEBHOOK_RESULTS = ("delivered", "failed", "gone", "skipped")

blueprint = Blueprint("metrics", __name__)


class DatabaseCollector:
    """The series read from the database at each scrape: the flag, the checker's heartbeat, the mail queues."""

    def __init__(self, storage: Storage, settings: Settings):
        self.storage = storage
        self.settings = settings

    def describe(self) -> Sequence[Metric]:
        """Nothing to describe in advance: the registry then never collects at registration (no database read)."""
        return ()

    def collect(self) -> Iterator[Metric]:
        """The database's series, as of now."""
        now = utcnow()
        up = self.storage.flag.read().served_state(now) == "up"
        yield GaugeMetricFamily(
            "fallback_up", "1 while visitors are redirected to the main site, 0 while served the page.", int(up)
        )
        beat = self.storage.checker.read().heartbeat_at
        # Never beaten: infinitely old, so that the staleness alert fires on a checker that never ran.
        age = (now - beat).total_seconds() if beat else math.inf
        yield GaugeMetricFamily(
            "fallback_checker_heartbeat_age_seconds", "Seconds since the checker's last round ended.", age
        )
        limit = fresh_seconds(self.settings.check_interval, self.settings.check_timeout)
        yield GaugeMetricFamily(
            "fallback_checker_heartbeat_max_age_seconds",
            "The heartbeat age past which /_fallback/healthz fails.",
            limit,
        )
        followups = self.storage.followups.counts()
        mails = CounterMetricFamily(
            "fallback_followup_mails", "Follow-up mails sent or given up, from the database.", labels=["result"]
        )
        for result in ("sent", "failed"):
            mails.add_metric([result], getattr(followups, result))
        yield mails
        yield GaugeMetricFamily(
            "fallback_followup_mails_pending", "Follow-up mails waiting to be sent.", followups.pending
        )
        if self.settings.admit_rate is not None:  # off: absent, as the SPEC allows (no rate applies)
            gate = self.storage.admission.read()
            yield GaugeMetricFamily(
                "fallback_admit_rate", "Visitors sent on per second by admission now (0 while paused).", gate.rate
            )
            yield GaugeMetricFamily(
                "fallback_waiting", "Visitors holding a place in line.", gate.waiting(now.timestamp())
            )
        webhooks = self.storage.outbox.counts("webhook")
        deliveries = CounterMetricFamily(
            "fallback_webhook_deliveries", "Webhook deliveries by how they ended, from the database.", labels=["result"]
        )
        for result in WEBHOOK_RESULTS:
            deliveries.add_metric([result], getattr(webhooks, result))
        yield deliveries
        yield GaugeMetricFamily(
            "fallback_webhook_deliveries_pending", "Webhook deliveries waiting to be posted.", webhooks.pending
        )


def authorised() -> bool:
    """Whether the request carries the metrics or the API token; 404 when neither is set, 429 after many wrong ones."""
    rt = runtime()
    tokens = {"metrics": rt.settings.metrics_token, "api": rt.settings.api_token}
    if not any(tokens.values()):
        abort(404)
    # Every token shares one failure budget (fallback.team.tokens), or guesses would go where it is not counted.
    role = check_secret(rt, bearer_token(), tokens, "token")
    if isinstance(role, Refusal) and role.status == 429:
        abort(Response(f"{role.detail.capitalize()}.\n", 429, role.headers, mimetype="text/plain"))
    return not isinstance(role, Refusal)


@blueprint.get(PATH)
def scrape() -> Response:
    """Every series in Prometheus' text format, for a bearer of the metrics or the API token."""
    if not authorised():
        response = Response("Send Authorization: Bearer <FALLBACK_METRICS_TOKEN>.\n", 401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="fallback metrics"'
    else:
        response = Response(runtime().metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})
    response.headers["Cache-Control"] = "no-store"
    return response
