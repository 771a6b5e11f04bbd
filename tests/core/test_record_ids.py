"""Decision ids and idempotency keys are what `stable_hash` says they are, however the decider builds them.

The decider builds most records on a fast path (pre-hashed key prefixes, no second pydantic validation). If that
path ever drifted from `stable_hash`, a replay or a redelivery decided on the other path would get new keys and
push again: this test replays the demo through every shipped pack and recomputes every id and key the slow way.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path

from crmrules import plugins
from crmrules.eventfile import read_events
from crmrules.language import load_packs
from crmrules.models import Decision, OutboxItem, construct_validated, stable_hash
from crmrules.clock import ManualClock
from crmrules.pipeline import Pipeline
from crmrules.store import open_store

ROOT = Path(__file__).resolve().parents[2]


def test_every_stored_id_and_key_is_the_stable_hash_of_its_parts(tmp_path: Path) -> None:
    packs = load_packs([str(ROOT / "rules")], None, plugins.action_types(), plugins.condition_functions())
    events = list(read_events(ROOT / "examples" / "demo" / "events.jsonl"))
    until = max(e.occurred_at for e in events) + dt.timedelta(days=7)
    store = open_store(str(tmp_path / "replay.sqlite"))
    try:
        Pipeline(store, packs, clock=ManualClock(until.timestamp()),
                 ).replay(events, until=until.timestamp())
        decisions = store.all_decisions()
        rows = store.outbox_rows(limit=100_000)
    finally:
        store.close()
    assert len(decisions) > 40 and len(rows) > 20  # the demo exercises the decider, not an empty path
    by_id = {d.id: d for d in decisions}
    for d in decisions:
        kind = "goal" if d.reason.startswith("goal reached") else "decision"
        assert d.id == stable_hash(kind, f"{d.pack}/{d.rule}", d.entity_id, d.trigger, length=24), d
    keys: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        keys[json.loads(row["body"])["decision_id"]].add(row["key"])
    for decision_id, found in keys.items():
        d = by_id[decision_id]
        expected = {stable_hash(f"{d.pack}/{d.rule}", d.entity_id, d.trigger, i, length=32)
                    for i in range(len(d.actions))}
        assert found <= expected, (d.rule, found - expected)


def test_a_constructed_record_is_the_validated_one() -> None:
    decision = Decision(id="d1", rule="r", pack="p", rule_version="v1", entity_id="lead-1", entity_kind="lead",
                        trigger="ev-1", event_ids=["ev-1"], at=1.0, outcome="fired", reason="",
                        facts={"점수": 80}, actions=[{"type": "tag", "tag": "관심 높음"}])
    built = construct_validated(Decision, dict(decision.__dict__))
    assert built == decision
    assert built.model_dump_json() == decision.model_dump_json()
    assert built.model_fields_set == decision.model_fields_set
    assert Decision.model_validate_json(built.model_dump_json()) == decision
    item = OutboxItem(idempotency_key="k", decision_id="d1", rule="p/r", entity_id="lead-1", entity_kind="lead",
                      identities={"email": "kim@example.com"}, action=decision.actions[0], due_at=1.0,
                      decided_at=1.0)
    built_item = construct_validated(OutboxItem, dict(item.__dict__))
    assert built_item == item and built_item.model_dump_json() == item.model_dump_json()
    assert built_item.model_fields_set == item.model_fields_set
