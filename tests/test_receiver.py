"""The receiver as a webhook sender sees it: a real `crmrules serve` process on loopback, a real SQLite file,
a test plugin (tests/support/testhook_plugin.py) mounting a JSON webhook and pushing to a local HTTP target."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from crmrules import ManualClock, Pipeline, SQLiteStore, load_pack
from crmrules.api import Runtime
from crmrules.config import Settings
from crmrules.models import Event
from crmrules.outbox import Dispatcher
from crmrules.receiver import create_app
from crmrules.receiver.logging import PiiFilter, mask_pii
from crmrules.sidecar.worker import Poller, Worker
from crmrules.registry import Registry
from crmrules.store import StoreUnavailable
from tests.support.servers import serve
from tests.support.sidecar import Sidecar, request, start_sidecar
from tests.support.target import start_target
from tests.support.testhook import (ENV, KEY, MAX_BODY, PACK, config, inbox_rows, outbox_of, pushed_for, signup,
                                    wait_until)


def metric_values(sidecar: Sidecar) -> dict[tuple[str, tuple], float]:
    status, headers, body = sidecar.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture(scope="module")
def target():
    target = start_target()
    yield target
    target.server.stop()


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory, target):
    sidecar = start_sidecar(tmp_path_factory.mktemp("sidecar"), config(target), env=ENV)
    yield sidecar
    assert sidecar.stop() == 0, sidecar.log()


# ---------------------------------------------------------------- receiving

def test_an_accepted_event_is_in_the_inbox_when_the_answer_comes(sidecar, target):
    body = signup("park@example.com")
    status, _, answer = sidecar.post("/hooks/test", body, KEY)
    assert status == 200, answer
    assert json.loads(answer) == {"accepted": 1, "duplicates": 0}
    rows = inbox_rows(sidecar, body["events"][0]["id"])  # read by another process, right after the answer
    assert len(rows) == 1 and rows[0]["status"] in ("pending", "done")
    wait_until(lambda: pushed_for(target, "park@example.com"), what="the welcome task to be pushed")


def test_a_redelivery_is_a_duplicate_and_acts_once(sidecar, target):
    body = signup("choi@example.com")
    first = sidecar.post("/hooks/test", body, KEY)
    wait_until(lambda: pushed_for(target, "choi@example.com"), what="the first push")
    again = sidecar.post("/hooks/test", body, KEY)
    assert json.loads(first[2]) == {"accepted": 1, "duplicates": 0}
    assert json.loads(again[2]) == {"accepted": 0, "duplicates": 1}
    time.sleep(1.0)  # time for a second action, were there one
    assert len(pushed_for(target, "choi@example.com")) == 1
    assert len(outbox_of(sidecar, "choi@example.com")) == 1
    assert len(inbox_rows(sidecar, body["events"][0]["id"])) == 1


def test_an_oversized_body_is_refused_with_413(sidecar):
    body = signup("big@example.com")
    body["events"][0]["props"] = {"note": "x" * (MAX_BODY + 100)}
    status, headers, answer = sidecar.post("/hooks/test", body, KEY)
    assert status == 413
    assert headers["Content-Type"] == "application/json"
    assert "max_body_bytes" in json.loads(answer)["error"]
    assert inbox_rows(sidecar, body["events"][0]["id"]) == []


def test_malformed_json_is_refused_with_400_and_a_reason(sidecar):
    status, _, answer = sidecar.post("/hooks/test", data=b'{"events": [{"id": "x1", "type": "sig', headers=KEY)
    assert status == 400
    assert "not valid JSON" in json.loads(answer)["error"]
    assert inbox_rows(sidecar, "x1") == []


def test_a_rejected_request_answers_its_status_and_stores_nothing(sidecar):
    body = signup("mallory@example.com")
    status, _, answer = sidecar.post("/hooks/test", body, {"X-Test-Key": "wrong"})
    assert status == 401
    assert json.loads(answer) == {"error": "wrong or missing X-Test-Key"}
    assert inbox_rows(sidecar, body["events"][0]["id"]) == []


def test_a_plugin_bug_is_a_500_that_leaks_nothing_and_is_logged_masked(sidecar):
    status, _, answer = sidecar.post("/hooks/test/boom", {}, KEY)
    assert status == 500
    reply = json.loads(answer)
    assert set(reply) == {"error", "id"}
    assert "secret" not in answer.decode() and "Traceback" not in answer.decode()
    assert sidecar.get("/healthz")[0] == 200  # still serving
    log = wait_until(lambda: reply["id"] in sidecar.log() and sidecar.log(), what="the error in the log")
    assert "RuntimeError: secret internals" in log
    assert "kim.yujin@example.com" not in log and "10-1234-5678" not in log
    assert "k***@example.com" in log


def test_a_store_that_cannot_write_is_a_503_with_retry_after(sidecar):
    status, headers, answer = sidecar.post("/hooks/test/unavailable", {}, KEY)
    assert status == 503
    assert headers["Retry-After"] == "5"
    assert "send again later" in json.loads(answer)["error"]


def test_unknown_paths_and_methods_answer_json(sidecar):
    status, headers, answer = sidecar.get("/nope")
    assert status == 404 and "error" in json.loads(answer)
    status, headers, answer = sidecar.get("/hooks/test")
    assert status == 405 and "POST" in headers["Allow"]


# ---------------------------------------------------------------- health, metrics, description

def test_health_and_readiness(sidecar):
    status, _, body = sidecar.get("/healthz")
    assert status == 200 and json.loads(body) == {"status": "up"}
    status, headers, body = sidecar.get("/readyz")
    assert status == 200
    assert json.loads(body) == {"ready": True, "rules": 1,
                                "checks": {"store": "ok", "packs": "ok", "worker": "ok"}}
    assert headers["Cache-Control"] == "no-store"


def test_metrics_count_events_decisions_and_pushes(sidecar, target):
    before = metric_values(sidecar)
    body = signup("metrics@example.com")
    sidecar.post("/hooks/test", body, KEY)
    sidecar.post("/hooks/test", body, KEY)
    sidecar.post("/hooks/test", signup("x@example.com"), {"X-Test-Key": "wrong"})
    wait_until(lambda: pushed_for(target, "metrics@example.com"), what="the push")
    after = wait_until(lambda: (m := metric_values(sidecar))[
        ("crmrules_outbox_actions_total", (("status", "sent"), ("target", "testhook")))] >
        before.get(("crmrules_outbox_actions_total", (("status", "sent"), ("target", "testhook"))), 0) and m,
        what="the push to be counted")

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("crmrules_events_total", source="testhook", result="accepted") == 1
    assert delta("crmrules_events_total", source="testhook", result="duplicate") == 1
    assert delta("crmrules_events_total", source="testhook", result="rejected") >= 1
    assert delta("crmrules_decisions_total", outcome="fired") >= 1
    assert delta("crmrules_push_duration_seconds_count", target="testhook") >= 1
    assert ("crmrules_inbox_depth", ()) in after
    assert ("crmrules_outbox_items", (("status", "dead"),)) in after
    assert after[("crmrules_worker_last_cycle_timestamp_seconds", ())] > time.time() - 60


def test_openapi_describes_own_and_plugin_endpoints(sidecar):
    status, _, body = sidecar.get("/openapi.json")
    assert status == 200
    doc = json.loads(body)
    assert doc["openapi"] == "3.1.0"
    assert {"/healthz", "/readyz", "/metrics", "/openapi.json", "/hooks/test"} <= set(doc["paths"])
    assert doc["paths"]["/hooks/test"]["post"]["operationId"] == "testhook_events"  # from the blueprint
    assert doc["paths"]["/hooks/test/boom"]["post"]["summary"].startswith("Fail like a plugin bug")  # from the view
    assert doc["paths"]["/readyz"]["get"]["responses"]["503"]
    refs = [v for v in _walk(doc) if isinstance(v, str) and v.startswith("#/components/")]
    for ref in refs:  # every reference resolves
        node = doc
        for part in ref[2:].split("/"):
            node = node[part]


def _walk(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)
    else:
        yield node


# ---------------------------------------------------------------- crashes, restarts, pulls

def test_kill_9_right_after_the_answer_loses_nothing(tmp_path):
    target = start_target()
    try:
        # First run receives only (no worker), so the event is surely unprocessed when the process dies.
        sidecar = start_sidecar(tmp_path, config(target), env=ENV, args=["--no-worker"])
        status, _, _ = sidecar.post("/hooks/test", signup("crash@example.com"), KEY)
        assert status == 200
        sidecar.kill()
        sidecar.args = []
        sidecar.start()
        wait_until(lambda: pushed_for(target, "crash@example.com"), what="the push after the restart")
        time.sleep(0.5)
        assert len(pushed_for(target, "crash@example.com")) == 1
        assert sidecar.stop() == 0
        assert "crmrules: stopped" in sidecar.log()
    finally:
        target.server.stop()


def test_a_poller_pulls_pages_and_keeps_its_cursor(tmp_path):
    target = start_target()
    rows = [{"id": f"p{i}", "type": "signup", "email": f"pulled{i}@example.com"} for i in range(3)]
    try:
        sidecar = start_sidecar(tmp_path, config(target, testhook={"poll_every": 0.2, "pull": rows}), env=ENV)
        for i in range(3):
            wait_until(lambda i=i: pushed_for(target, f"pulled{i}@example.com"), what=f"pulled event {i}")
        with contextlib.closing(sqlite3.connect(sidecar.store_path)) as db:
            assert db.execute("SELECT value FROM meta WHERE key='pull.testhook.cursor'").fetchone() == ("3",)
        sidecar.restart()  # the cursor survives: nothing is pulled or pushed twice
        time.sleep(1.0)
        assert all(len(pushed_for(target, f"pulled{i}@example.com")) == 1 for i in range(3))
        sidecar.stop()
    finally:
        target.server.stop()


# ---------------------------------------------------------------- in-process: readiness, worker, logging

def _bare_pm() -> Registry:
    return Registry.of({})


class _FullStore:
    def set_meta(self, key: str, value: str) -> None:
        raise StoreUnavailable("database or disk is full")


def test_readyz_is_503_when_the_store_cannot_write_or_packs_are_missing():
    app = create_app(Runtime(ingest=lambda events: [], settings={}, store=_FullStore()), _bare_pm(), packs=None,
                     checks={"worker": lambda: "the worker thread is not running"})
    with serve(app) as server:
        status, _, body = request("GET", server.url + "/readyz")
        assert status == 503
        checks = json.loads(body)["checks"]
        assert checks == {"store": "the store does not take writes: database or disk is full",
                          "packs": "rule packs are not loaded", "worker": "the worker thread is not running"}
        assert request("GET", server.url + "/healthz")[0] == 200


def _pipeline(tmp_path: Path) -> Pipeline:
    # "testhook" is trusted as tests/support/testhook_plugin.py declares it, without loading that plugin here.
    return Pipeline(SQLiteStore(tmp_path / "s.sqlite"), [load_pack(PACK / "pack.yaml")],
                    clock=ManualClock(time.time()), trusted_sources={"testhook"})


def _event(n: int) -> Event:
    return Event(id=f"w{n}", source="testhook", type="signup", occurred_at=dt.datetime.now(dt.timezone.utc),
                 subject={"ids": {"email": f"w{n}@example.com"}})


def test_the_worker_sets_aside_an_event_that_always_fails(tmp_path, monkeypatch):
    pipeline = _pipeline(tmp_path)
    settings = Settings(targets={})
    worker = Worker(pipeline, Dispatcher(pipeline.store, settings, _bare_pm(), pipeline.clock), pipeline.clock)
    real = pipeline._process

    def process(event):
        if event.id == "w2":
            raise ValueError("cannot evaluate this one")
        real(event)

    monkeypatch.setattr(pipeline, "_process", process)
    pipeline.ingest([_event(n) for n in range(1, 5)])
    worker.cycle()
    worker.cycle()
    store = pipeline.store
    assert store.inbox_counts() == {"done": 3, "rejected": 1}
    rejected = store._conn().execute("SELECT key, error FROM inbox WHERE status='rejected'").fetchone()
    assert tuple(rejected) == ("w2", "ValueError: cannot evaluate this one")


def test_the_worker_runs_and_stops_promptly(tmp_path):
    pipeline = _pipeline(tmp_path)
    pipeline.clock.set(time.time() + 60)  # actions are due at their event's time: have the clock past it
    dispatcher = Dispatcher(pipeline.store, Settings(), _bare_pm(), pipeline.clock)
    worker = Worker(pipeline, dispatcher, pipeline.clock, idle=5.0).start()
    pipeline.ingest([_event(10)])
    worker.wake()
    wait_until(lambda: pipeline.store.outbox_counts().get("dead") == 1, what="the worker to evaluate and push")
    started = time.monotonic()
    assert worker.stop(timeout=5)
    assert time.monotonic() - started < 1.0  # woken from its idle wait, not after it
    assert worker.health() == "the worker thread is not running"
    # no target configured: dead letter with the reason
    assert pipeline.store.outbox_rows("dead")[0]["last_error"] == \
        "no plugin pushes task to any target; set targets.task in crmrules.yaml"


def test_poller_without_a_plugin_that_pulls_stops_quietly(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    poller = Poller(_bare_pm(), store, lambda events: [True] * len(events), {"nobody": {"poll_every": "1m"}})
    assert poller.sources == ["nobody"]
    assert poller.poll("nobody") == 0
    with pytest.raises(ValueError, match="plugins.bad.poll_every"):
        Poller(_bare_pm(), store, lambda e: [], {"bad": {"poll_every": "soon"}})


@pytest.mark.parametrize("text, masked", [
    ("mail kim.yujin@example.co.kr now", "mail k***@example.co.kr now"),
    ("call +82 10-1234-5678", "call ***-**78"),
    ("or 010-1234-5678 or 01012345678", "or ***-**78 or ***-**78"),
    ("US (415) 555-2671 / +14155552671 / 555.123.4567", "US ***-**71 / ***-**71 / ***-**67"),
    ("at 2026-03-02T09:00:00+09:00 and 2026-03-02 09:00:00,123", None),
    ("ts 1795428681.35 id 12345678901 seq 123456789 on 127.0.0.1:8787 from 192.168.100.200", None),
    ("key a6b6dfe3975676ed5070ab66d488e355 uuid 123e4567-e89b-12d3-a456-426614174000 v1.2.3", None),
])
def test_pii_masking(text, masked):
    assert mask_pii(text) == (masked if masked is not None else text)


def test_the_log_filter_masks_arguments_and_tracebacks():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "lead %s phoned from %s", ("lee@example.com",
                               "010-9876-5432"), None)
    try:
        raise ValueError("bad lee@example.com")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert PiiFilter().filter(record)
    assert record.getMessage() == "lead l***@example.com phoned from ***-**32"
    assert "lee@example.com" not in record.exc_text and "l***@example.com" in record.exc_text
