"""Fixtures for the Salesforce plugin tests: the Salesforce stand-in on loopback (driven by the REAL
simple-salesforce through the stand-in's URL-rewriting session), secrets in the environment, outbox items, and
the receiver app (`crmrules.receiver.create_app`) with a real SQLite store and pipeline behind it."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from werkzeug.test import TestResponse

from crmrules.api import OutboxItem, Runtime
from crmrules.language import load_packs
from crmrules.clock import ManualClock
from crmrules.pipeline import Pipeline
from crmrules.store import SQLiteStore

from ..standins import salesforce as sf_standin
from ..support.servers import RunningServer, serve
from .envelopes import ORG_ID

SESSION_ID = "test-session"
INSTANCE = "example.my.salesforce.com"
FLOW_SECRET = "flow-secret-3f9c2a"
PACKS = Path(__file__).resolve().parent / "packs"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESFORCE_INSTANCE_URL", f"https://{INSTANCE}")
    monkeypatch.setenv("SALESFORCE_SESSION_ID", SESSION_ID)
    monkeypatch.setenv("SALESFORCE_FLOW_SECRET", FLOW_SECRET)
    for name in ("SALESFORCE_USERNAME", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN",
                 "SALESFORCE_OUTBOUND_TOKEN", "SALESFORCE_ORGANIZATION_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sf_server() -> Iterator[RunningServer]:
    with serve(sf_standin.create_app(session_id=SESSION_ID, org_id=ORG_ID)) as server:
        yield server


@pytest.fixture
def sf_state(sf_server: RunningServer) -> sf_standin.SalesforceState:
    return sf_server.app.config["STATE"]


@pytest.fixture
def sf_session(sf_server: RunningServer) -> Iterator[sf_standin.RewritingSession]:
    session = sf_standin.rewriting_session(sf_server.url, timeout=2.0)
    yield session
    session.close()


@pytest.fixture
def sf(sf_session: sf_standin.RewritingSession):  # -> simple_salesforce.Salesforce, to seed and read back
    from simple_salesforce import Salesforce

    return Salesforce(instance=INSTANCE, session_id=SESSION_ID, session=sf_session)


@contextlib.contextmanager
def through(session: Any) -> Iterator[None]:
    """Every Salesforce call in the block goes through `session` (the plugin's `use_session`)."""

    from crmrules_salesforce.client import use_session

    before = use_session(session)
    try:
        yield
    finally:
        use_session(before)


@pytest.fixture
def options(sf_session: sf_standin.RewritingSession) -> Iterator[dict[str, Any]]:
    """Our section of the settings; meanwhile every Salesforce call goes to the stand-in."""

    with through(sf_session):
        yield {"organization_id": ORG_ID, "timezone": "Asia/Seoul"}


def deployment(options: dict[str, Any]) -> dict[str, Any]:
    return {"plugins": {"salesforce": options}}


def item(action: dict[str, Any], *, ids: dict[str, str], kind: str = "lead", key: str = "k" * 32,
         due_at: float | None = None, record: dict[str, Any] | None = None) -> OutboxItem:
    return OutboxItem.model_validate({
        "idempotency_key": key, "decision_id": "d1", "rule": "pack/rule", "entity_id": "e1", "entity_kind": kind,
        "identities": ids, "action": action, "due_at": due_at if due_at is not None else time.time(),
        "record": record or {}})


# ---------------------------------------------------------------- the receiver, in process

class Receiver:
    """The real receiver app (crmrules.receiver.create_app) over a real store and pipeline, driven in process.

    Tests post to it with Flask's test client (the same WSGI app `crmrules serve` runs under waitress), then
    `process()` evaluates the inbox as the worker does.
    """

    def __init__(self, tmp_path: Path, plugin: dict[str, Any], packs: list[Path] | None = None,
                 max_body_bytes: int = 1_000_000):
        from crmrules.config import Settings
        from crmrules.receiver import create_app

        self.store = SQLiteStore(tmp_path / "crmrules.sqlite")
        self.clock = ManualClock(time.time())
        self.pipeline = Pipeline(self.store, load_packs([str(p) for p in packs or []]), clock=self.clock)
        settings = Settings(store=str(tmp_path / "crmrules.sqlite"), plugins={"salesforce": plugin},
                            targets={"default": "salesforce"}, max_body_bytes=max_body_bytes)
        self.settings = settings
        runtime = Runtime(ingest=self.pipeline.ingest, settings=settings.model_dump(), store=self.store)
        self.app = create_app(runtime, packs=[])
        self.client = self.app.test_client()

    def post(self, path: str, data: bytes | str, headers: dict[str, str] | None = None,
             content_type: str = "text/xml; charset=utf-8") -> TestResponse:
        return self.client.post(path, data=data, headers=headers or {}, content_type=content_type)

    def process(self) -> int:
        return self.pipeline.process_pending()

    def inbox(self) -> int:
        return sum(self.store.inbox_counts().values())

    def leads(self) -> list[tuple[str, str, dict[str, Any]]]:
        return self.store.entities("lead")

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(tmp_path, {"organization_id": ORG_ID})
    yield r
    r.close()


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone.utc)  # type: ignore[misc]
