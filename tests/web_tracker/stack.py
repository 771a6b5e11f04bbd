"""The sidecar around the web tracker, in-process, for its tests: receiver, pipeline, dispatcher on loopback.

The pieces are the core's own: the receiver app (`crmrules.receiver.app.create_app`, which mounts every plugin's
`register_sources` blueprint, its error handlers and metrics) and the outbox dispatcher
(`crmrules.outbox.dispatcher.Dispatcher`, which calls the registered target's `push`), wired as `crmrules serve` wires them. The
test drives them step by step — `process()` is one worker cycle: evaluate the inbox, then push what is due — so
that it can look between the steps. `test_sidecar.py` runs the real `crmrules serve` process instead.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from flask import request

from crmrules.api import Runtime
from crmrules.config import Settings
from crmrules.language import load_packs
from crmrules.outbox.dispatcher import Dispatcher
from crmrules.pipeline import Pipeline
from crmrules.receiver.app import create_app
from crmrules.store import SQLiteStore
from tests.support.servers import RunningServer, serve


HERE = Path(__file__).resolve().parent
TEST_PACK = HERE / "packs" / "onsite-coupon"
WRITE_KEY = "wk_site_test"


def settings_for(tmp_path: Path, packs: list[Path] | None = None, **plugin: Any) -> Settings:
    options = {"write_keys": [WRITE_KEY], **plugin}
    return Settings(store=str(tmp_path / "crmrules.sqlite"), rules=[str(p) for p in (packs or [])],
                    targets={"message.onsite": "web_tracker"}, plugins={"web_tracker": options})


def onsite_file(settings: Settings) -> str:
    """Where the web tracker keeps on-site messages by default: in its data folder beside the store."""

    store = Path(settings.store)
    return str(store.parent / f"{store.stem}.plugins" / "web_tracker" / "onsite.sqlite")


class StandIn:
    """Receiver + worker + dispatcher of one deployment, driven step by step by the test."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = SQLiteStore(settings.store)
        packs = load_packs(settings.rules) if settings.rules else []
        self.pipeline = Pipeline(self.store, packs)
        runtime = Runtime(ingest=self.pipeline.ingest, settings=settings.model_dump(), store=self.store)
        self.app = create_app(runtime, packs=packs)
        self.dispatcher = Dispatcher(self.store, settings)
        self.responses: list[tuple[str, str, int]] = []  # (method, path, status) of every request answered

        @self.app.after_request
        def _log(response):  # type: ignore[no-untyped-def]
            self.responses.append((request.method, request.path, response.status_code))
            return response

        self.server: RunningServer | None = None
        self.pushed: list[tuple[str, str]] = []  # (outbox key, result or error)

    # ------------------------------------------------------------------ HTTP

    def start(self) -> "StandIn":
        self.server = serve(self.app)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None, "start() first"
        return self.server.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.store.close()

    def __enter__(self) -> "StandIn":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ worker and dispatcher

    def process(self) -> int:
        """One worker cycle: evaluate what the inbox holds, then push whatever is due."""

        done = self.pipeline.process_pending()
        self.dispatch()
        return done

    def dispatch(self, now: float | None = None) -> None:
        with self.app.app_context():  # as `crmrules serve` runs its worker
            self.dispatcher.run_once(now)
        self.pushed += [(o.key, o.detail if o.status == "sent" else f"{o.status}: {o.detail}")
                        for o in self.dispatcher.last]

    def wait_for_inbox(self, count: int, timeout: float = 10.0) -> None:
        """Block until the inbox holds `count` events (they arrive from the browser asynchronously)."""

        wait_until(lambda: sum(self.store.inbox_counts().values()) >= count, timeout,
                   lambda: f"inbox holds {self.store.inbox_counts()}, wanted {count} events")


def wait_until(check: Callable[[], bool], timeout: float = 10.0, why: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(why() if why else "timed out")
        time.sleep(0.05)
