"""The worker thread: drains the inbox, fires due timers and runs the dispatcher; and the optional poller.

Why one thread: durable-rules must be driven from a single thread, and the pipeline's entity cache assumes
it is the only evaluator. The receiver threads only write the inbox, then `wake()` the worker so an event is
evaluated at once instead of at the next idle tick.

Why the poller has its own thread: a pull is a network call that may take seconds; it must not hold up
evaluation. It only writes the inbox (like a webhook view), then wakes the worker.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, ContextManager

from ..store import StoreUnavailable

if TYPE_CHECKING:  # for the annotations only: the server hands the worker what it drives
    from ..clock import Clock
    from ..outbox.dispatcher import Dispatcher
    from ..pipeline import Pipeline
    from ..store import MetaStore

log = logging.getLogger("crmrules.worker")

CURSOR_KEY = "pull.{source}.cursor"
"""Where a poller keeps its cursor in the store's meta table, per source."""


class Worker:
    """Runs `cycle()` until stopped: evaluate pending events, fire timers due now, push due actions; and,
    between cycles, a slice of store retention when one is due."""

    def __init__(self, pipeline: Pipeline, dispatcher: Dispatcher, clock: Clock, *, metrics: Any = None,
                 idle: float = 0.25, context: Callable[[], ContextManager[Any]] | None = None, max_backoff: float = 30.0,
                 batch: int = 200, retention: Any = None, prune_batches: int = 20, prune_pause: float = 0.005):
        self.pipeline = pipeline
        self.batch = batch  # events per transaction: smaller keeps the receivers' inbox writes from waiting long
        self.dispatcher = dispatcher
        self.clock = clock
        self.metrics = metrics
        self.idle = idle
        self.context = context or contextlib.nullcontext
        self.max_backoff = max_backoff
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.cycles = 0
        self.last_error: str | None = None
        self.reload: Callable[[], Any] | None = None  # run on this thread, between cycles (SIGHUP)
        self._reload = threading.Event()
        # Retention (config.Retention): pruned between cycles, `prune_batches` transactions at a time so that
        # evaluation and the receivers' acks never wait behind a long clean-up; None: never prune.
        self.retention = retention
        self.prune_batches = prune_batches
        self.prune_pause = prune_pause
        self._prune_due = time.monotonic() if retention is not None else float("inf")
        self.pruned: dict[str, int] = {}

    # -------------------------------------------------------------- control

    def start(self) -> "Worker":
        if self._thread is not None:
            raise RuntimeError("the worker is already started")
        self._thread = threading.Thread(target=self._run, name="crmrules-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> bool:
        """Finish the current cycle and stop; True when the thread ended within `timeout`."""

        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wake(self) -> None:
        """New events are in the inbox: run a cycle now rather than after the idle pause."""

        self._wake.set()

    def request_reload(self) -> None:
        """Re-read the rule packs before the next cycle (safe to call from a signal handler)."""

        self._reload.set()
        self._wake.set()

    def _maybe_prune(self) -> None:
        """Run a slice of retention when due; a full pass is due every `retention.every` seconds.

        A failure is logged and retried at the next interval: pruning is housekeeping and must not make the
        worker look unhealthy or delay evaluation.
        """

        if time.monotonic() < self._prune_due or self.retention is None:
            return
        store = self.pipeline.store
        try:
            result = store.prune(self.retention, max_batches=self.prune_batches, pause=self.prune_pause,
                                 should_stop=self._stop.is_set)
        except Exception:
            log.exception("pruning the store failed; again in %g s", self.retention.every)
            self._prune_due = time.monotonic() + self.retention.every
            return
        for kind, n in result.counts.items():
            self.pruned[kind] = self.pruned.get(kind, 0) + n
        if self.metrics is not None:
            self.metrics.count_pruned(result.counts)
        if result.more:  # more to do: go on after the next cycle
            self._prune_due = time.monotonic()
            return
        self._prune_due = time.monotonic() + self.retention.every
        if self.metrics is not None:
            self.metrics.prune_last.set(time.time())
        if any(self.pruned.values()):
            log.info("retention pruned %s", ", ".join(f"{n} {k}" for k, n in self.pruned.items() if n))
        self.pruned = {}

    def _maybe_reload(self) -> None:
        if self._reload.is_set():
            self._reload.clear()
            if self.reload is not None:
                try:
                    self.reload()
                except Exception:  # a reload must never stop evaluation with the packs already running
                    log.exception("reloading the rule packs failed; the running packs stay")

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def health(self) -> str | None:
        """A readiness check: None while the thread runs."""

        if not self.alive:
            return "the worker thread is not running"
        return None

    # -------------------------------------------------------------- the loop

    def cycle(self) -> int:
        """One round; returns how much was done (events, timers, pushes), 0 when there was nothing."""

        done = self._drain()
        now = self.clock.now()
        done += self.pipeline.advance(now)
        done += self.dispatcher.run_once(now)
        if self.metrics is not None:
            self.metrics.sync_pipeline(self.pipeline.stats)
            self.metrics.worker_heartbeat.set(time.time())
        self.cycles += 1
        return done

    def _drain(self) -> int:
        """Evaluate the inbox; an event whose evaluation always fails is set aside, not retried forever.

        A failing batch is redone one event per transaction: the event that fails alone is marked `rejected`
        in the inbox with the error, and the rest go on. A store that cannot write is not the events' fault:
        that error goes up and the whole cycle is retried later.
        """

        try:
            return self.pipeline.process_pending(batch=self.batch)
        except (StoreUnavailable, sqlite3.OperationalError):
            raise
        except Exception:
            log.warning("a batch of events failed to evaluate; retrying them one by one", exc_info=True)
        try:
            return self.pipeline.process_pending(batch=1)
        except (StoreUnavailable, sqlite3.OperationalError):
            raise
        except Exception as exc:
            pending = self.pipeline.store.pending(1)
            if not pending:
                raise
            seq, event = pending[0]
            self.pipeline.store.finish(seq, "rejected", f"{type(exc).__name__}: {exc}"[:2000])
            log.exception("event %s of %s cannot be evaluated; set aside as rejected in the inbox", event.id,
                          event.source)
            if self.metrics is not None:
                self.metrics.failed.labels(event.source).inc()
            return 1

    def _run(self) -> None:
        failures = 0
        with self.context():
            while not self._stop.is_set():
                self._wake.clear()
                self._maybe_reload()
                try:
                    done = self.cycle()
                    self._maybe_prune()
                    failures = 0
                    self.last_error = None
                except Exception as exc:  # the store is busy or full, a plugin misbehaves: back off, go on
                    failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    if self.metrics is not None:
                        self.metrics.worker_errors.inc()
                    pause = min(self.max_backoff, self.idle * 2 ** min(failures, 10))
                    log.exception("worker cycle failed (%d in a row); again in %.1f s", failures, pause)
                    # An accepted event wakes it early: the store took that write, so it likely takes ours.
                    self._wake.wait(pause)
                    continue
                if not done:
                    self._wake.wait(self.idle)


class Poller:
    """Pulls the sources of each plugin that has `poll_every` in its settings, and ingests what they return."""

    def __init__(self, plugins: Any, store: MetaStore, ingest: Callable[[list[Any]], list[bool]],
                 plugin_settings: dict[str, Any], *, metrics: Any = None, on_ingest: Callable[[], None] | None = None,
                 context: Callable[[], ContextManager[Any]] | None = None, max_pages: int = 50,
                 contexts: Any = None):
        from ..language.durations import parse_duration
        from ..plugins import PluginContexts

        self.plugins = plugins  # a crmrules.registry.Registry: sources with a `pull`, by plugin
        self.contexts = contexts or PluginContexts(plugins, {"plugins": plugin_settings})
        self.store = store
        self.ingest = ingest
        self.metrics = metrics
        self.on_ingest = on_ingest or (lambda: None)
        self.context = context or contextlib.nullcontext
        self.max_pages = max_pages
        self.every: dict[str, float] = {}
        self.settings: dict[str, dict[str, Any]] = {}
        for name, options in plugin_settings.items():
            if isinstance(options, dict) and options.get("poll_every") is not None:
                try:
                    self.every[name] = float(parse_duration(options["poll_every"]))
                except ValueError as exc:
                    raise ValueError(f"plugins.{name}.poll_every: {exc}") from None
                self.settings[name] = dict(options)
        self._due = {name: 0.0 for name in self.every}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def sources(self) -> list[str]:
        return sorted(self.every)

    def start(self) -> "Poller":
        if self.every:
            self._thread = threading.Thread(target=self._run, name="crmrules-poller", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> bool:
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        with self.context():
            while not self._stop.is_set():
                now = time.monotonic()
                for name in self.sources:
                    if self._stop.is_set() or now < self._due[name]:
                        continue
                    try:
                        self.poll(name)
                    except Exception:
                        log.exception("pulling %s failed; next try in %g s", name, self.every[name])
                    self._due[name] = time.monotonic() + self.every[name]
                pause = min(self._due.values()) - time.monotonic() if self._due else 1.0
                self._stop.wait(max(0.05, min(pause, 1.0)))

    def poll(self, name: str) -> int:
        """Pull the sources of plugin `name` until they have no more pages (at most `max_pages` each); returns
        how many events were new."""

        found = [s for s in self.plugins.sources.values() if s.pull is not None and s.plugin == name]
        if not found:
            log.warning("no plugin pulls %r; remove plugins.%s.poll_every or install its plugin", name, name)
            return 0
        context = self.contexts.get(name)
        return sum(self._pull(source, context) for source in found)

    def _pull(self, source: Any, context: Any) -> int:
        key = CURSOR_KEY.format(source=source.name)
        new = 0
        for _ in range(self.max_pages):
            since = self.store.get_meta(key)
            result = source.pull(since, context)
            unknown = {e.source for e in result.events} - set(self.plugins.sources)
            if unknown:
                raise ValueError(f"the pull of {source.name!r} returned events of unregistered source(s) "
                                 f"{', '.join(sorted(unknown))}")
            if result.events:
                accepted = self.ingest(list(result.events))
                new += sum(accepted)
                if self.metrics is not None:
                    self.metrics.pulls.labels(source).inc(len(result.events))
                self.on_ingest()
            # The cursor moves only after the events are in the inbox: a crash in between pulls them again,
            # and the inbox's unique key makes that harmless.
            if result.cursor is not None and result.cursor != since:
                self.store.set_meta(key, str(result.cursor))
            if not result.more:
                break
        return new
