"""`crmrules serve`: the store, the pipeline, the receiver app, the worker and the poller in one process.

Why waitress: a production WSGI server in pure Python with no extra process manager. Requests run on its
threads and only write the inbox; the single worker thread evaluates. On SIGTERM or SIGINT the server stops
taking requests and finishes those in flight, then the worker finishes its cycle, then the store closes.

SIGHUP re-reads the rule packs (same paths and variable overrides) on the worker thread, between two cycles. A
pack with errors is refused as a whole: the packs already running keep running, every error is logged with its
file:line:column, and the failure shows in /readyz (`reload`) and in `crmrules_rules_reload_failed`.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import waitress

from .. import plugins
from ..api import Runtime
from ..clock import Clock
from ..config import Settings
from ..language import PackError
from ..language.loader import load_rules
from ..outbox.dispatcher import Dispatcher
from ..pipeline import Pipeline
from ..receiver.app import create_app
from ..receiver.logging import configure_logging
from ..receiver.metrics import Metrics
from ..store import open_store
from . import embedded
from .worker import Poller, Worker

log = logging.getLogger("crmrules.server")


class _Stop(SystemExit):
    """Raised in the main thread by SIGTERM or SIGINT; waitress' loop ends on SystemExit (its socket handlers
    swallow other exceptions) and waits for the requests in flight."""


def serve(settings: Settings, packs: list[Any], host: str = "127.0.0.1", port: int = 8787, threads: int = 8,
          worker: bool = True) -> None:
    """Run the sidecar until SIGTERM or SIGINT."""

    configure_logging()
    created = not Path(settings.store).exists()
    store = open_store(settings.store)
    registry = plugins.fresh_registry()
    write_key = embedded.prepare(settings, store, registry.targets) if settings.embedded else None
    clock = Clock()
    metrics = Metrics(store)
    contexts = plugins.PluginContexts(registry, settings, metrics=metrics.registry, clock=clock)
    pipeline = Pipeline(store, packs, clock=clock)
    dispatcher = Dispatcher(store, settings, registry, clock, metrics=metrics, contexts=contexts,
                            send_check=pipeline.send_check)  # the worker thread runs both
    runner = Worker(pipeline, dispatcher, clock, metrics=metrics, retention=settings.retention) if worker else None

    def ingest(events: list[Any]) -> list[bool]:
        accepted = pipeline.ingest(events)
        if runner is not None and any(accepted):
            runner.wake()
        return accepted

    runtime = Runtime(ingest=ingest, settings=settings.model_dump(), store=store, metrics=metrics, contexts=contexts)
    checks = {"worker": runner.health} if runner is not None else {}
    packs = list(packs)  # replaced in place by a reload, so /readyz counts the rules running
    reloader = Reloader(settings, pipeline, packs, metrics)
    app = create_app(runtime, registry, packs=packs, checks=checks, status=reloader.status)
    counted_ingest = app.extensions["crmrules"].ingest
    poller = Poller(registry, store, counted_ingest, settings.plugins, metrics=metrics, contexts=contexts,
                    on_ingest=runner.wake if runner is not None else None, context=app.app_context)
    # Plugins reach the deployment through crmrules.api.runtime() while pushing too, so the worker runs in an
    # app context.
    if runner is not None:
        runner.context = app.app_context

    max_body = int(settings.max_body_bytes)
    try:
        server = waitress.create_server(app, host=host, port=port, threads=threads, ident="crmrules",
                                        max_request_body_size=max(4 * max_body, 1 << 20),
                                        clear_untrusted_proxy_headers=True)
    except OSError as exc:
        store.close()
        raise SystemExit(f"crmrules: cannot listen on {host}:{port}: {exc}") from None
    url = _url(server)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    if runner is not None:  # pollers run beside the one evaluator, not in every receive-only process
        runner.reload = reloader.reload
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda signum, frame: runner.request_reload())
        runner.start()
        poller.start()
    else:  # SIGHUP's default would end the process
        previous[signal.SIGHUP] = signal.signal(
            signal.SIGHUP, lambda signum, frame: log.warning("SIGHUP ignored: this process runs no rules (--no-worker)"))
    if settings.embedded:
        print(embedded.describe(settings, packs, url, write_key, created), flush=True)
    rules = sum(len(p.rules) for p in packs)
    print(f"crmrules: serving on {url} ({len(packs)} pack(s), {rules} rule(s), store {settings.store}"
          f"{'' if runner else ', no worker'})", flush=True)
    try:
        server.run()
    finally:
        log.info("stopping: no new requests; finishing the worker's cycle")
        server.close()
        poller.stop()
        if runner is not None and not runner.stop():
            log.warning("the worker did not stop in time; its current work will be redone on the next start")
        store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("crmrules: stopped", flush=True)


class Reloader:
    """Re-reads the rule packs into the running pipeline; keeps the old program when the new one has errors."""

    def __init__(self, settings: Settings, pipeline: Pipeline, packs: list[Any], metrics: Metrics):
        self.settings = settings
        self.pipeline = pipeline
        self.packs = packs
        self.metrics = metrics
        self.last: dict[str, Any] | None = None

    def status(self) -> dict[str, Any]:
        return {"reload": self.last} if self.last is not None else {}

    def reload(self) -> bool:
        """Called on the worker thread; True when the new packs run now."""

        log.info("SIGHUP: reloading the rule packs from %s", ", ".join(map(str, self.settings.rules)))
        try:
            packs = load_rules(list(self.settings.rules), self.settings)
        except PackError as exc:
            return self._failed([str(e) for e in exc.errors])
        except (OSError, ValueError) as exc:  # a pack folder gone, unreadable YAML outside the checker
            return self._failed([f"{type(exc).__name__}: {exc}"])
        old = (self.pipeline.program, self.pipeline.evaluator)
        try:
            self.pipeline.load(packs)
        except Exception as exc:  # compiling failed after the checker passed: a bug, but never a dead sidecar
            self.pipeline.program, self.pipeline.evaluator = old
            log.exception("the reloaded packs do not compile")
            return self._failed([f"{type(exc).__name__}: {exc}"])
        self.packs[:] = packs
        rules = sum(len(p.rules) for p in packs)
        self.last = {"ok": True, "at": time.time(), "packs": len(packs), "rules": rules}
        self.metrics.reloads.labels("ok").inc()
        self.metrics.reload_failed.set(0)
        log.warning("reloaded the rule packs: %d pack(s), %d rule(s)", len(packs), rules)
        return True

    def _failed(self, errors: list[str]) -> bool:
        for error in errors:
            log.error("reload refused: %s", error)
        log.error("reload refused with %d error(s); the packs loaded before keep running", len(errors))
        self.last = {"ok": False, "at": time.time(), "errors": errors}
        self.metrics.reloads.labels("failed").inc()
        self.metrics.reload_failed.set(1)
        return False


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signal.Signals(signum).name)


def _url(server: Any) -> str:
    if hasattr(server, "effective_port"):
        host, port = server.effective_host, server.effective_port
    else:  # several sockets (a host name that resolves to more than one address): name the first
        host, port = server.effective_listen[0][:2]
    return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run `crmrules serve`")
