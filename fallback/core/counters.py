"""What each process counts for Prometheus: contact posts by outcome, probes and their durations, flips.

Under `fallback serve` the counts use prometheus_client's multiprocess mode (see fallback.team.metrics), so that
totals hold over all workers and survive a worker's restart.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LEAD_RESULTS = ("accepted", "spam", "invalid", "limited")
PROBE_RESULTS = ("ok", "failed")
# Probe durations: the default slow limit is 2 s and the default timeout 3 s; the bounds go past both.
PROBE_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)


class CountedLead(Protocol):
    """What a count needs of a stored lead (fallback.storage.NewLead)."""

    @property
    def spam_reason(self) -> str | None: ...

    @property
    def drill(self) -> bool: ...


class CountedProbe(Protocol):
    """What a count needs of a probe's result (fallback.checking.probe.ProbeResult)."""

    @property
    def ok(self) -> bool: ...

    @property
    def latency(self) -> float: ...


def multiprocess_folder() -> str | None:
    """The folder `fallback serve` shares between its workers for their counts, or None outside it."""
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """One app's counters, and the registry a scrape reads (the processes' counts and the database's figures)."""

    def __init__(self, folder: str | None = None, collectors: Iterable[Collector] = ()):
        self.registry = CollectorRegistry()
        if folder:
            # prometheus_client picks its value store when it is first imported: too late to change here.
            if not getattr(values.ValueClass, "_multiprocess", False):
                raise RuntimeError(f"prometheus_client was imported before {MULTIPROC_ENV} was set")
            MultiProcessCollector(self.registry, path=folder)
        # In multiprocess mode the counters live in the folder's files, which the collector above reads.
        own = None if folder else self.registry
        self.leads = Counter("fallback_leads", "Contact posts, by outcome.", ["result"], registry=own)
        self.probes = Counter("fallback_probes", "Probes of the check URLs, by result.", ["result"], registry=own)
        self.probe_duration = Histogram(
            "fallback_probe_duration_seconds",
            "How long probes of the check URLs took.",
            buckets=PROBE_BUCKETS,
            registry=own,
        )
        self.flips = Counter("fallback_flips", "Times the checker flipped the state (down or up).", registry=own)
        self.admissions = Counter(
            "fallback_admitted", "Visitors sent on to the main site by admission (FALLBACK_ADMIT_RATE).", registry=own
        )
        # Every outcome shows from the first scrape, at 0: a rate over a series that is not there yet is empty.
        for result in LEAD_RESULTS:
            self.leads.labels(result)
        for result in PROBE_RESULTS:
            self.probes.labels(result)
        for collector in collectors:
            self.registry.register(collector)

    def lead(self, lead: CountedLead | None) -> None:
        """Count one contact post that stored `lead` (accepted, or spam), or was invalid (None); not a drill's."""
        if lead is not None and lead.drill:
            return  # `fallback drill --rehearse`'s test lead is no visitor's: the counts stay the visitors'
        self.leads.labels("invalid" if lead is None else "spam" if lead.spam_reason else "accepted").inc()

    def limited(self) -> None:
        """Count one contact post turned away by the rate limit."""
        self.leads.labels("limited").inc()

    def probed(self, results: Iterable[CountedProbe]) -> None:
        """Count one round's probes of the check URLs and their durations."""
        for result in results:
            self.probes.labels("ok" if result.ok else "failed").inc()
            self.probe_duration.observe(result.latency)

    def flipped(self) -> None:
        """Count one flip of the state."""
        self.flips.inc()

    def admitted(self) -> None:
        """Count one visitor sent on by admission."""
        self.admissions.inc()

    def exposition(self) -> bytes:
        """Every series, in Prometheus' text format."""
        return generate_latest(self.registry)
