"""Rows for the contract suite, built from the real models; times are fixed Unix seconds (after wall-clock
now, so that what a store stamps with the wall clock, like `retry_dead`'s due time, is already due)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from crmrules.decide.timers import Timer
from crmrules.models import AddTag, CreateTask, Decision, Event, OutboxItem
from crmrules.store import DecisionStore

T0 = 2_000_000_000.0  # 2033-05-18
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


def event(id: str, at: float = T0, source: str = "test", type: str = "signup", kind: str = "lead",
          related: list[dict[str, Any]] | None = None, **ids: str) -> Event:
    return Event(id=id, source=source, type=type, occurred_at=dt.datetime.fromtimestamp(at, dt.timezone.utc),
                 subject={"kind": kind, "ids": ids or {"email": f"{id}@example.com"}}, related=related or [],
                 properties={"n": id})


def decision(id: str, entity_id: str, at: float = T0, rule: str = "welcome", reason: str = "") -> Decision:
    return Decision(id=id, rule=rule, pack="p", rule_version="v1", entity_id=entity_id, entity_kind="lead",
                    trigger=f"e-{id}", at=at, outcome="fired", reason=reason, facts={"score": 10},
                    actions=[AddTag(tag="new")])


def item(key: str, entity_id: str, due_at: float = T0, rule: str = "welcome", decision_id: str | None = None,
         title: str | None = None) -> OutboxItem:
    action = CreateTask(title=title) if title is not None else AddTag(tag="new")
    return OutboxItem(idempotency_key=key, decision_id=decision_id or f"d-{key}", rule=rule, entity_id=entity_id,
                      entity_kind="lead", identities={"email": "kim@example.com"}, action=action, due_at=due_at)


def queue(store: DecisionStore, *items: OutboxItem, created_at: float = T0) -> int:
    """Record actions (each with its own decision, so retention sees a decision per action)."""

    decisions = [decision(i.decision_id, i.entity_id, at=created_at) for i in items]
    return store.record(decisions, list(items), [created_at] * len(items))


def timer(entity_id: str, rule_key: str, key: str, due_at: float, leaf: str = "", **payload: Any) -> Timer:
    return Timer(entity_id, rule_key, key, due_at, leaf, dict(payload))
