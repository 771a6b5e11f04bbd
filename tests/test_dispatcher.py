"""The outbox dispatcher against a real HTTP target on loopback: retries as the target tells, backoff with
jitter, dead letters with reasons, routing errors, and the `crmrules outbox` commands an admin uses on them."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crmrules import ManualClock, SQLiteStore
from crmrules.config import Settings
from crmrules.models import OutboxItem, stable_hash
from crmrules.outbox import Dispatcher, backoff
from crmrules.outbox.dispatcher import MAX_DELAY
from crmrules.receiver import Metrics
from crmrules.registry import Registry
from tests.support import testhook_plugin
from tests.support.sidecar import start_sidecar
from tests.support.target import start_target
from tests.support.testhook import ENV, KEY, config, outbox_of, pushed_for, signup, wait_until

T0 = 1_800_000_000.0


@pytest.fixture
def target():
    target = start_target()
    yield target
    target.server.stop()


@pytest.fixture
def store(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    yield store
    store.close()


def plugin_manager() -> Registry:
    return Registry.of({"testhook": testhook_plugin})


def settings(target=None, **kw) -> Settings:
    options = {"url": target.url} if target is not None else {}
    return Settings(targets=kw.pop("targets", {"task": "testhook"}), plugins={"testhook": options}, **kw)


def queue(store: SQLiteStore, action: dict | None = None, email: str = "kim@example.com", due: float = T0) -> str:
    key = stable_hash(email, json.dumps(action or {}), due)
    item = OutboxItem(idempotency_key=key, decision_id="d-" + key[:8], rule="sales/welcome", entity_id="l_1",
                      entity_kind="lead", identities={"email": email},
                      action=action or {"type": "task", "title": "Welcome call"}, due_at=due)
    assert store.record([], [item]) == 1
    return key


def row(store: SQLiteStore, key: str) -> dict:
    return next(r for r in store.outbox_rows(limit=100000) if r["key"] == key)


def next_at(store: SQLiteStore, key: str) -> float:
    return store._conn().execute("SELECT next_at FROM outbox WHERE key=?", (key,)).fetchone()[0]


# ---------------------------------------------------------------- backoff

def test_backoff_is_full_jitter_doubling_from_one_second_to_fifteen_minutes():
    class Top(random.Random):
        def uniform(self, a, b):
            return b

    assert [backoff(n, Top()) for n in range(1, 6)] == [1, 2, 4, 8, 16]
    assert backoff(11, Top()) == MAX_DELAY == 900
    assert backoff(10_000, Top()) == 900
    rng = random.Random(1)
    draws = [backoff(4, rng) for _ in range(2000)]
    assert 0 <= min(draws) < 0.1 and 7.9 < max(draws) <= 8  # spread over all of [0, 8]
    assert 3.6 < sum(draws) / len(draws) < 4.4


# ---------------------------------------------------------------- retries on a manual clock

def test_429_then_500_then_success_pushes_once_after_waiting_as_told(store, target):
    target.script = [(429, {"Retry-After": "120"}), (500, {})]
    metrics = Metrics(store)
    clock = ManualClock(T0)
    dispatcher = Dispatcher(store, settings(target), plugin_manager(), clock, metrics=metrics,
                            rng=random.Random(3))
    key = queue(store)

    assert dispatcher.run_once(T0) == 1
    first = row(store, key)
    assert (first["status"], first["attempts"]) == ("pending", 1)
    assert first["last_error"].startswith("throttled")
    assert T0 + 120 <= next_at(store, key) < T0 + 121  # Retry-After beats the first backoff (≤ 1 s)

    assert dispatcher.run_once(T0 + 119) == 0  # not yet
    assert len(target.received) == 1

    t2 = next_at(store, key)
    assert dispatcher.run_once(t2) == 1
    second = row(store, key)
    assert (second["status"], second["attempts"]) == ("pending", 2)
    assert "target answered 500" in second["last_error"]
    assert t2 <= next_at(store, key) <= t2 + 2 + 1  # second failure: jitter in [0, 2 s]

    t3 = next_at(store, key)
    assert dispatcher.run_once(t3) == 1
    done = row(store, key)
    assert (done["status"], done["attempts"], done["last_error"]) == ("sent", 3, None)
    assert dispatcher.run_once(t3 + 3600) == 0

    assert [r.status for r in target.received] == [429, 500, 200]
    assert {r.key for r in target.received} == {key}  # one idempotency key for every try
    assert len(target.successes()) == 1
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in metrics.registry.collect() for s in f.samples}
    assert samples[("crmrules_outbox_actions_total", (("status", "retry"), ("target", "testhook")))] == 2
    assert samples[("crmrules_outbox_actions_total", (("status", "sent"), ("target", "testhook")))] == 1
    assert samples[("crmrules_push_duration_seconds_count", (("target", "testhook"),))] == 3


def test_failing_past_max_attempts_is_a_dead_letter_with_its_reason(store, target):
    target.script = [(503, {})] * 10
    dispatcher = Dispatcher(store, settings(target, max_attempts=3), plugin_manager(), ManualClock(T0),
                            rng=random.Random(5))
    key = queue(store)
    now = T0
    for _ in range(3):
        assert dispatcher.run_once(now) == 1
        now = next_at(store, key)
    dead = row(store, key)
    assert dead["status"] == "dead" and dead["attempts"] == 3
    assert dead["last_error"].startswith("gave up after 3 attempts: target answered 503")
    assert dispatcher.run_once(now + 86400) == 0
    assert len(target.received) == 3


@pytest.mark.parametrize("script, action, reason", [
    ([(422, {})], None, "target refused it (422)"),
    ([], {"type": "message", "channel": "email", "subject": "hi"}, "testhook cannot push message"),
])
def test_a_push_that_cannot_succeed_is_dead_at_once(store, target, script, action, reason):
    target.script = script
    dispatcher = Dispatcher(store, settings(target, targets={"default": "testhook"}), plugin_manager(),
                            ManualClock(T0))
    key = queue(store, action)
    assert dispatcher.run_once(T0) == 1
    dead = row(store, key)
    assert (dead["status"], dead["attempts"]) == ("dead", 1)
    assert dead["last_error"].startswith(reason)


@pytest.mark.parametrize("targets, action, reason", [
    ({}, None, "no plugin pushes task to any target; set targets.task in crmrules.yaml"),
    ({"task": "hubspot"}, None, "no plugin pushes task to hubspot; set targets.task in crmrules.yaml"),
    ({"message.sms": "testhook"}, {"type": "message", "channel": "email"},
     "no plugin pushes message to any target; set targets.message (or targets.message.email) in crmrules.yaml"),
])
def test_an_action_nobody_pushes_is_dead_with_what_to_configure(store, target, targets, action, reason):
    dispatcher = Dispatcher(store, settings(target, targets=targets), plugin_manager(), ManualClock(T0))
    key = queue(store, action)
    assert dispatcher.run_once(T0) == 1
    assert row(store, key)["last_error"] == reason
    assert row(store, key)["status"] == "dead"
    assert target.received == []


def test_an_unexpected_exception_is_retried_with_its_text(store):
    dispatcher = Dispatcher(store, settings(None), plugin_manager(), ManualClock(T0))  # no url: LookupError
    key = queue(store)
    assert dispatcher.run_once(T0) == 1
    retry = row(store, key)
    assert (retry["status"], retry["last_error"]) == ("pending", "LookupError: plugins.testhook.url is not set")


def test_bad_options_of_the_target_plugin_are_a_dead_letter_naming_the_key(store, target):
    config = Settings(targets={"task": "testhook"}, plugins={"testhook": {"url": target.url, "urll": "x"}})
    dispatcher = Dispatcher(store, config, plugin_manager(), ManualClock(T0))
    key = queue(store)
    assert dispatcher.run_once(T0) == 1
    dead = row(store, key)
    assert dead["status"] == "dead" and dead["last_error"].startswith(
        "plugins.testhook.urll: not an option of the testhook plugin; did you mean 'url'?")
    assert target.received == []


def test_routing_by_channel_and_plugin_action_name(store, target):
    dispatcher = Dispatcher(store, settings(target, targets={"message.email": "nobody", "webhook": "testhook"}),
                            plugin_manager(), ManualClock(T0))
    hook = queue(store, {"type": "webhook", "url": "https://example.invalid/x"})
    mail = queue(store, {"type": "message", "channel": "email"})
    assert dispatcher.run_once(T0) == 2
    assert row(store, hook)["status"] == "sent"
    assert row(store, mail)["last_error"].startswith("no plugin pushes message to nobody")


# ---------------------------------------------------------------- in real time, through the sidecar

def test_real_time_retry_after_one_second_then_500_then_success(tmp_path, target):
    target.script = [(429, {"Retry-After": "1"}), (500, {})]
    sidecar = start_sidecar(tmp_path, config(target), env=ENV)
    try:
        started = time.time()
        status, _, _ = sidecar.post("/hooks/test", signup("realtime@example.com"), KEY)
        assert status == 200
        wait_until(lambda: pushed_for(target, "realtime@example.com"), timeout=20, what="the push to succeed")
        elapsed = time.time() - started
        time.sleep(0.5)
        tries = target.received
        assert [r.status for r in tries] == [429, 500, 200]
        assert tries[1].at - tries[0].at >= 1.0  # waited as told
        assert elapsed < 1 + 2 + 3  # Retry-After, then ≤ 2 s of jitter, plus the worker's ticks
        rows = outbox_of(sidecar, "realtime@example.com")
        assert [(r["status"], r["attempts"]) for r in rows] == [("sent", 3)]
    finally:
        assert sidecar.stop() == 0


# ---------------------------------------------------------------- the admin's commands

def crmrules(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CRMRULES_CONFIG"}
    return subprocess.run([sys.executable, "-m", "crmrules.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=dict(env, **ENV))


def test_outbox_list_retry_and_drop_from_the_command_line(tmp_path, store, target):
    target.script = [(422, {}), (400, {})]
    dispatcher = Dispatcher(store, settings(target), plugin_manager(), ManualClock(T0))
    first = queue(store, email="a@example.com")
    second = queue(store, email="b@example.com", due=T0 + 1)
    assert dispatcher.run_once(T0 + 1) == 2
    path = str(tmp_path / "s.sqlite")

    out = crmrules(tmp_path, "outbox", "list", "--status", "dead", "--store", path)
    assert out.returncode == 0, out.stderr
    assert "dead: 2" in out.stdout
    assert first[:12] in out.stdout and second[:12] in out.stdout
    assert "target refused it (422)" in out.stdout

    out = crmrules(tmp_path, "outbox", "retry", first[:12], "--store", path)
    assert (out.returncode, out.stdout.strip()) == (0, "1 action(s) queued again"), out.stderr
    assert (row(store, first)["status"], row(store, first)["attempts"]) == ("pending", 0)
    assert dispatcher.run_once(time.time() + 1) == 1  # the target has recovered: it is sent now
    assert row(store, first)["status"] == "sent"

    out = crmrules(tmp_path, "outbox", "drop", second[:12], "--store", path)
    assert (out.returncode, out.stdout.strip()) == (0, "dropped"), out.stderr
    assert row(store, second)["status"] == "cancelled"
    out = crmrules(tmp_path, "outbox", "list", "--status", "dead", "--store", path)
    assert second[:12] not in out.stdout
    assert crmrules(tmp_path, "outbox", "drop", second[:12], "--store", path).returncode == 1  # not twice
