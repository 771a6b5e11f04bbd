"""Retention: what `prune` removes, what it must keep (dedup keys, live actions, timers, entities), dry runs,
batching, the settings, the CLI, the worker, and that a store under a steady stream stops growing."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from crmrules import SQLiteStore
from crmrules.cli import cli
from crmrules.config import Retention, Settings, load_settings
from crmrules.decide.timers import Timer
from crmrules.receiver.metrics import Metrics
from crmrules.sidecar.worker import Worker

from .helpers import T0, days, ev, fired, pipeline

DAY = 86400.0

RULES = """
pack: t
rules:
  - id: welcome
    when: {event: signup}
    then: [{tag: new}]
    limit: every time
"""


def rows(path: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def dump(path: Path) -> dict[str, list[tuple]]:
    tables = ("inbox", "identities", "entities", "merges", "timers", "decisions", "outbox", "meta")
    return {t: rows(path, f"SELECT * FROM {t} ORDER BY rowid") for t in tables}


def signups(p, n: int, start: int = 0) -> list:
    events = [ev("signup", i, email=f"lead{start + i}@example.com", id=f"s{start + i}") for i in range(n)]
    assert p.ingest(events) == [True] * n
    p.process_pending()
    return events


@pytest.fixture()
def busy(tmp_path):
    """Three evaluated signups (one action each: sent, dead, pending), a rejected and a pending event, a timer."""

    p = pipeline(tmp_path, RULES)
    events = signups(p, 3)
    keys = {r["entity_id"]: r["key"] for r in p.store.outbox_rows()}
    ids = [p.store.find_entity(f"lead{i}@example.com") for i in range(3)]
    p.store.claim_due(time.time(), owner="test")
    p.store.mark_sent(keys[ids[0]])
    p.store.mark_dead(keys[ids[1]], "refused")
    p.store.mark_retry(keys[ids[2]], time.time() + 60, "busy")
    p.ingest([ev("signup", 5, id="bad"), ev("signup", 6, id="waiting")])
    seq = p.store.pending(1)[0][0]
    p.store.finish(seq, "rejected", "cannot evaluate")
    p.store.upsert_timers([Timer(ids[0], "t/welcome", "no:1", T0.timestamp() + 400 * DAY)])
    return p, events, ids, keys


def test_payloads_go_first_and_a_redelivered_event_is_still_a_duplicate(busy, tmp_path):
    p, events, ids, _ = busy
    db = tmp_path / "store.sqlite"
    now = time.time() + 31 * DAY
    result = p.store.prune(Retention(), now=now)
    assert result.counts == {"inbox_payloads": 3, "inbox_keys": 0, "decisions": 0, "outbox": 0}
    statuses = dict(rows(db, "SELECT key, status FROM inbox"))
    assert statuses == {"s0": "pruned", "s1": "pruned", "s2": "pruned", "bad": "rejected", "waiting": "pending"}
    assert rows(db, "SELECT key FROM inbox WHERE payload=''") == [("s0",), ("s1",), ("s2",)]
    # HubSpot retries: the key is still there, so nothing is evaluated twice
    assert p.ingest([events[0]]) == [False]
    p.process_pending()
    assert len(fired(p, "welcome")) == 4  # three signups and the one that was still pending
    assert p.store.events_of(ids[0]) == []  # explain no longer lists the pruned event
    assert p.store.load_entity(ids[0])["tags"] == ["new"]  # the entity's state is untouched


def test_keys_go_after_their_horizon_and_then_the_event_counts_as_new(busy, tmp_path):
    p, events, _, _ = busy
    db = tmp_path / "store.sqlite"
    retention = Retention(decisions=None, outbox=None)
    assert p.store.prune(retention, now=time.time() + 89 * DAY).counts["inbox_keys"] == 0
    result = p.store.prune(retention, now=time.time() + 91 * DAY)
    assert result.counts["inbox_keys"] == 3
    assert sorted(rows(db, "SELECT key, status FROM inbox")) == [("bad", "rejected"), ("waiting", "pending")]
    assert p.ingest([events[0]]) == [True]  # past the horizon a redelivery is new: that is the trade-off


def test_outbox_and_decisions_keep_live_actions(busy, tmp_path):
    p, _, ids, keys = busy
    db = tmp_path / "store.sqlite"
    now = time.time() + 400 * DAY  # past every horizon
    result = p.store.prune(Retention(), now=now)
    assert result.counts["outbox"] == 1
    assert dict(rows(db, "SELECT key, status FROM outbox")) == {keys[ids[1]]: "dead", keys[ids[2]]: "pending"}
    # the audit trail of actions still waiting or dead stays; the sent one's decision goes
    assert sorted(r[0] for r in rows(db, "SELECT entity_id FROM decisions")) == sorted([ids[1], ids[2]])
    assert result.counts["decisions"] == 1
    assert rows(db, "SELECT entity_id, rule_key FROM timers") == [(ids[0], "t/welcome")]
    assert len(rows(db, "SELECT id FROM entities")) == 3
    assert len(rows(db, "SELECT * FROM identities")) == 3
    p.store.retry_dead()  # a dead letter can still be sent again after pruning
    assert p.store.outbox_counts() == {"pending": 2}


def test_sending_actions_are_never_pruned(busy, tmp_path):
    p, _, ids, keys = busy
    p.store.retry_dead()
    p.store.claim_due(time.time() + 3600, owner="other")  # both pending rows now 'sending'
    assert p.store.outbox_counts() == {"sending": 2, "sent": 1}
    p.store.prune(Retention(), now=time.time() + 400 * DAY)
    assert p.store.outbox_counts() == {"sending": 2}


def test_dry_run_counts_what_a_real_run_removes_and_changes_nothing(busy, tmp_path):
    p, _, _, _ = busy
    db = tmp_path / "store.sqlite"
    now = time.time() + 400 * DAY
    before = dump(db)
    dry = p.store.prune(Retention(), now=now, dry_run=True)
    assert dump(db) == before
    assert dry.total > 0
    real = p.store.prune(Retention(), now=now)
    assert real.counts == dry.counts
    assert dump(db) != before


def test_batches_are_bounded_and_resume(tmp_path):
    p = pipeline(tmp_path, RULES)
    signups(p, 7)
    retention = Retention(batch=2)
    now = time.time() + 31 * DAY
    first = p.store.prune(retention, now=now, max_batches=2)
    assert first.more and first.counts["inbox_payloads"] == 4
    rest = p.store.prune(retention, now=now)
    assert not rest.more and rest.counts["inbox_payloads"] == 3
    assert p.store.inbox_counts() == {"pruned": 7}


def test_a_store_under_a_steady_stream_stops_growing(tmp_path):
    """Deleted pages go to SQLite's freelist and new rows reuse them: no VACUUM needed for a flat file size."""

    filler = "x" * 1000

    def run(path: Path, prune: bool) -> list[int]:
        store = SQLiteStore(path)
        retention = Retention(events="2d", event_keys="4d", batch=100)
        sizes = []
        for day in range(24):
            base = 1_000_000_000 + day * DAY
            events = [ev("page_view", 0, id=f"d{day}-{i}", note=filler) for i in range(150)]
            store.accept_many(events, received_at=base)
            store.finish_many([seq for seq, _ in store.pending(1000)])
            if prune:
                store.prune(retention, now=base + DAY)
            sizes.append(store._conn().execute("PRAGMA page_count").fetchone()[0])
        store.close()
        return sizes

    kept = run(tmp_path / "pruned.sqlite", prune=True)
    grown = run(tmp_path / "unpruned.sqlite", prune=False)
    assert grown[-1] > 2 * grown[8]  # the control: without retention the file grows with the stream
    assert kept[-1] <= kept[8] * 1.1, kept  # with it, freed pages are reused: flat after the horizon


def test_settings_read_durations_like_the_rule_language(tmp_path):
    config = tmp_path / "crmrules.yaml"
    config.write_text("retention: {events: 2w, decisions: 1y, outbox: 90d, event_keys: null, every: 30m}\n")
    r = load_settings(str(config)).retention
    assert (r.events, r.decisions, r.outbox, r.every) == (14 * DAY, 365 * DAY, 90 * DAY, 1800.0)
    assert r.event_keys is None and r.key_horizon is None  # keys kept forever
    assert Retention(events="120d").key_horizon == 120 * DAY  # a key never goes before its payload
    with pytest.raises(ValidationError, match="at least 3d"):
        Retention(event_keys="2d")
    with pytest.raises(ValidationError, match="write 30d"):
        Retention(events="30 days")
    with pytest.raises(ValidationError, match="business hours"):
        Retention(decisions="8bh")
    config.write_text("retention: {events: soon}\n")
    with pytest.raises(SystemExit, match="retention.events"):
        load_settings(str(config))
    assert Settings().retention == Retention()


def test_cli_prune_dry_run_then_for_real(busy, tmp_path):
    db = tmp_path / "store.sqlite"
    config = tmp_path / "crmrules.yaml"
    # every horizon at its minimum, so today's rows are not touched but T0's decisions (months ago) are
    config.write_text(f"store: {db}\nretention: {{events: 0s, event_keys: 3d, decisions: 1d, outbox: 1d}}\n")
    before = dump(db)
    runner = CliRunner()
    dry = runner.invoke(cli, ["--config", str(config), "prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would remove         3  inbox payloads" in dry.output and "(dry run)" in dry.output
    assert "would remove         1  decisions" in dry.output
    assert dump(db) == before
    real = runner.invoke(cli, ["--config", str(config), "prune"])
    assert real.exit_code == 0, real.output
    assert "removed         3  inbox payloads" in real.output and "removed         1  decisions" in real.output
    assert "removed         0  inbox keys" in real.output
    assert runner.invoke(cli, ["prune", "--help"]).exit_code == 0


def test_the_worker_prunes_in_slices_and_counts_it(tmp_path):
    p = pipeline(tmp_path, RULES)
    signups(p, 5)
    metrics = Metrics()
    retention = Retention(events="0s", batch=2, every="1h")
    worker = Worker(p, dispatcher=None, clock=None, metrics=metrics, retention=retention, prune_batches=1,
                    prune_pause=0)
    worker._maybe_prune()
    assert p.store.inbox_counts() == {"done": 3, "pruned": 2}  # one slice, then back to evaluating
    worker._maybe_prune()
    worker._maybe_prune()
    assert p.store.inbox_counts() == {"pruned": 5}
    signups(p, 1, start=10)
    worker._maybe_prune()  # the pass is over: nothing until `every` has gone by
    assert p.store.inbox_counts() == {"pruned": 5, "done": 1}
    text = metrics.render().decode()
    assert 'crmrules_pruned_rows_total{kind="inbox_payloads"} 5.0' in text
    assert "crmrules_prune_last_run_timestamp_seconds" in text


def test_a_worker_without_retention_never_prunes(tmp_path):
    p = pipeline(tmp_path, RULES)
    signups(p, 2)
    worker = Worker(p, dispatcher=None, clock=None)
    worker._maybe_prune()
    assert p.store.inbox_counts() == {"done": 2}
    assert json.loads(json.dumps(p.store.inbox_counts())) == {"done": 2}
