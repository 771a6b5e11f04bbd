"""The sidecar's Prometheus metrics, in one registry shared by the receiver threads, the worker and the dispatcher.

Why prometheus_client: the text format has escaping rules, histogram buckets and HELP/TYPE lines that are easy
to get subtly wrong by hand, and its metrics are thread-safe. A registry of our own (not the library's global
one) keeps two apps in one process (tests) from clashing.

Counters only ever go up within one process, as Prometheus expects; the gauges of the store (inbox depth,
outbox rows by status) are read from the store at scrape time, so they are right after a restart too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ..store import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PUSH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

log = logging.getLogger("crmrules.metrics")

# `_created` series double the output and no dashboard of ours reads them
disable_created_metrics()


class _StoreGauges(Collector):
    """Inbox depth and outbox rows by status, counted in the store when scraped."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            depth = self.store.inbox_depth()
            outbox = self.store.outbox_counts()
            next_timer = self.store.next_timer_at()
        except Exception as exc:  # a scrape must not fail because the disk is busy; the gap shows in graphs
            log.warning("metrics: cannot read the store: %s", exc)
            return
        yield GaugeMetricFamily("crmrules_inbox_depth", "Accepted events not yet evaluated.", value=depth)
        family = GaugeMetricFamily("crmrules_outbox_items", "Outbox rows by status.", labels=["status"])
        for status in ("pending", "sending", "sent", "dead", "cancelled", "replayed"):
            family.add_metric([status], outbox.get(status, 0))
        yield family
        if next_timer is not None:
            yield GaugeMetricFamily("crmrules_next_timer_timestamp_seconds",
                                    "When the earliest waiting timer is due (Unix time).", value=next_timer)


class Metrics:
    """Every metric of one sidecar process. Pass the same instance to the app, the worker and the dispatcher."""

    def __init__(self, store: Store | None = None):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter("crmrules_events", "Inbound events by receiving source and result "
                              "(accepted, duplicate, rejected).", ["source", "result"], registry=r)
        self.failed = Counter("crmrules_events_failed", "Events set aside because their evaluation failed.",
                              ["source"], registry=r)
        self.processed = Counter("crmrules_events_processed", "Events evaluated by the worker.", registry=r)
        self.timers = Counter("crmrules_timers_fired", "Timers (absence, delays, dates) fired.", registry=r)
        self.decisions = Counter("crmrules_decisions", "Rule decisions by outcome (fired, shadow, blocked).",
                                 ["outcome"], registry=r)
        self.pushes = Counter("crmrules_outbox_actions", "Push attempts by target and result "
                              "(sent, retry, dead).", ["target", "status"], registry=r)
        self.push_seconds = Histogram("crmrules_push_duration_seconds", "Time a plugin took to push one action.",
                                      ["target"], buckets=PUSH_BUCKETS, registry=r)
        self.pulls = Counter("crmrules_pull_events", "Events pulled by pollers, by source.", ["source"], registry=r)
        self.worker_errors = Counter("crmrules_worker_errors", "Worker cycles that failed (retried).", registry=r)
        self.worker_heartbeat = Gauge("crmrules_worker_last_cycle_timestamp_seconds",
                                      "When the worker last finished a cycle (Unix time).", registry=r)
        self.reloads = Counter("crmrules_rules_reloads", "Rule pack reloads (SIGHUP) by result (ok, failed).",
                               ["result"], registry=r)
        self.reload_failed = Gauge("crmrules_rules_reload_failed", "1 when the last reload of the rule packs "
                                   "was refused (the packs loaded before keep running), else 0.", registry=r)
        self.pruned = Counter("crmrules_pruned_rows", "Store rows removed by retention, by kind (inbox_payloads, "
                              "inbox_keys, decisions, outbox).", ["kind"], registry=r)
        self.prune_last = Gauge("crmrules_prune_last_run_timestamp_seconds",
                                "When retention last finished a full pass over the store (Unix time).", registry=r)
        if store is not None:
            r.register(_StoreGauges(store))
        self._decisions_seen: dict[str, int] = {}
        self._processed_seen = 0
        self._timers_seen = 0

    # -------------------------------------------------------------- recording

    def count_ingest(self, source: str, accepted: list[bool]) -> None:
        new = sum(accepted)
        if new:
            self.events.labels(source, "accepted").inc(new)
        if len(accepted) - new:
            self.events.labels(source, "duplicate").inc(len(accepted) - new)

    def count_rejected(self, source: str) -> None:
        self.events.labels(source, "rejected").inc()

    def count_push(self, target: str, status: str, seconds: float | None = None) -> None:
        self.pushes.labels(target, status).inc()
        if seconds is not None:
            self.push_seconds.labels(target).observe(seconds)

    def count_pruned(self, counts: dict[str, int]) -> None:
        for kind, n in counts.items():
            if n:
                self.pruned.labels(kind).inc(n)

    def sync_pipeline(self, stats: Any) -> None:
        """Add what the pipeline counted since the last call (called from the worker thread only)."""

        for outcome, total in list(stats.decisions.items()):
            delta = total - self._decisions_seen.get(outcome, 0)
            if delta > 0:
                self.decisions.labels(outcome).inc(delta)
                self._decisions_seen[outcome] = total
        if stats.events > self._processed_seen:
            self.processed.inc(stats.events - self._processed_seen)
            self._processed_seen = stats.events
        if stats.timers > self._timers_seen:
            self.timers.inc(stats.timers - self._timers_seen)
            self._timers_seen = stats.timers

    # -------------------------------------------------------------- exposition

    def render(self) -> bytes:
        return generate_latest(self.registry)


def counting(ingest: Callable[[list[Any]], list[bool]], metrics: Metrics,
             source_of: Callable[[list[Any]], str]) -> Callable[[list[Any]], list[bool]]:
    """Wrap an ingest function so that accepted and duplicate events are counted by source."""

    def ingest_and_count(events: list[Any]) -> list[bool]:
        accepted = ingest(events)
        if events:
            metrics.count_ingest(source_of(events), accepted)
        return accepted

    ingest_and_count.__wrapped__ = ingest  # type: ignore[attr-defined]
    return ingest_and_count
