"""What a decision leaves behind: the `Decision` record (facts in words, reason, actions) and one `OutboxItem`
per action, with the ids and idempotency keys that make a redelivery or a replay push nothing twice.

Ids are `stable_hash(kind, rule key, entity, trigger)` and keys `stable_hash(rule key, entity, trigger, index)`
(tests/core/test_record_ids.py recomputes every one). Most records take a fast path: the key prefix is hashed
as `stable_hash` spells it, and the models are built without a second validation, because their parts were
validated when the actions were built.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ..language import ast
from ..models import Action, Decision, ENTITY_KINDS, OutboxItem, construct_validated, stable_hash
from .compiler import CompiledRule
from .describe import describe_leaf
from .state import EntityState
from .trigger import Context, Trigger

GOAL_REASON = "goal reached: pending reminders and delayed actions cancelled"


@dataclass
class _RulePlan:
    """What records need of a compiled rule, worked out once instead of once per firing."""

    cr: CompiledRule
    leaves: list[tuple[str, Any]]  # each condition part in words, with the part
    plain: bool  # rule id, pack, version and key are plain strings: records need no validation
    key_part: str  # cr.key as `stable_hash` spells it


class Records:
    """Builds the records of one program's decisions; caches per compiled rule."""

    def __init__(self) -> None:
        self._plans: dict[str, _RulePlan] = {}

    def _plan(self, cr: CompiledRule) -> _RulePlan:
        plan = self._plans.get(cr.key)
        if plan is None or plan.cr is not cr:
            rule = cr.rule
            plan = _RulePlan(cr, [(describe_leaf(leaf), leaf) for leaf in cr.leaves],
                             all(type(v) is str for v in (rule.id, rule.pack, rule.version, cr.key)),
                             f"str:{cr.key}")
            self._plans[cr.key] = plan
        return plan

    # ------------------------------------------------------------------ facts

    def facts(self, cr: CompiledRule, ctx: Context, trigger: Trigger, snapshot: dict[str, Any]) -> dict[str, Any]:
        """Each condition part with the value that satisfied it, in words."""

        leaf_slots = cr.leaf_slots
        return {text: _leaf_value(leaf, leaf_slots, ctx, trigger, snapshot) for text, leaf in self._plan(cr).leaves}

    # ------------------------------------------------------------------ decisions

    def decision(self, cr: CompiledRule, ctx: Context, trigger: Trigger, outcome: str, reason: str,
                 facts: dict[str, Any], actions: list[Action], kind: str = "decision") -> Decision:
        event_ids = ([trigger.id] if trigger.kind == "event"
                     else [str(trigger.payload["anchor_id"])] if trigger.payload.get("anchor_id") else [])
        plan = self._plan(cr)
        subject, rule = ctx.subject, cr.rule
        if (plan.plain and type(subject.id) is str and type(trigger.id) is str and subject.kind in ENTITY_KINDS
                and type(trigger.ts) in (float, int)):
            # the same fields, values and types `Decision(...)` below would give, without validating again:
            # `actions` were validated when they were built, `facts` is a fresh dict with str keys
            built: Decision = construct_validated(Decision, {
                "id": _sha(f"str:{kind}\x1f{plan.key_part}\x1fstr:{subject.id}\x1fstr:{trigger.id}", 24),
                "rule": rule.id, "pack": rule.pack, "rule_version": rule.version, "entity_id": subject.id,
                "entity_kind": subject.kind, "trigger": trigger.id, "event_ids": event_ids, "at": float(trigger.ts),
                "outcome": outcome, "reason": reason, "facts": _jsonable(facts), "actions": list(actions),
            })
            return built
        # `entity_kind` and `outcome` are Literals in the model; here pydantic checks the plain strings
        return Decision(
            id=stable_hash(kind, cr.key, subject.id, trigger.id, length=24), rule=rule.id,
            pack=rule.pack, rule_version=rule.version, entity_id=subject.id,
            entity_kind=subject.kind,
            trigger=trigger.id, event_ids=event_ids, at=trigger.ts,
            outcome=outcome,
            reason=reason, facts=_jsonable(facts), actions=actions,
        )

    def goal_decision(self, cr: CompiledRule, ctx: Context, trigger: Trigger) -> Decision:
        return self.decision(cr, ctx, trigger, "blocked", GOAL_REASON, {}, [], kind="goal")

    def withheld_decision(self, rule_key: str, cr: CompiledRule | None, state: EntityState, trigger_id: str,
                          at: float, reason: str, kind: str, event: bool = True) -> Decision:
        """The blocked decision of a rule whose waiting actions may no longer go (the lead's consent changed):
        `kind` "consent" when the change cancelled them, "send" when the dispatcher's last check did. The rule
        may have been removed since it decided (`cr` None): the record then names it by its key."""

        pack, _, rule_id = rule_key.partition("/")
        rule = cr.rule if cr is not None else None
        return Decision(
            id=stable_hash(kind, rule_key, state.id, trigger_id, length=24),
            rule=rule.id if rule else rule_id, pack=rule.pack if rule else pack,
            rule_version=rule.version if rule else "", entity_id=state.id, entity_kind=state.kind,
            trigger=trigger_id, event_ids=[trigger_id] if event else [], at=at, outcome="blocked", reason=reason,
        )

    # ------------------------------------------------------------------ outbox

    def outbox_items(self, cr: CompiledRule, state: EntityState, trigger: Trigger, decision: Decision,
                     planned: list[tuple[Action, float]]) -> list[OutboxItem]:
        """One item per (action, due time) of `decision`; call it once the actions are applied to `state`: each
        item carries the tags and score they left."""

        plan = self._plan(cr)
        ts = trigger.ts
        plain = (plan.plain and type(state.id) is str and type(trigger.id) is str and state.kind in ENTITY_KINDS
                 and type(ts) in (float, int))
        prefix = f"{plan.key_part}\x1fstr:{state.id}\x1fstr:{trigger.id}\x1fint:" if plain else ""
        items: list[OutboxItem] = []
        for i, (action, due) in enumerate(planned):
            identities = dict(state.identities)
            if plain and type(due) in (float, int) and all(type(k) is str and type(v) is str
                                                           for k, v in identities.items()):
                # the same fields, values and types `OutboxItem(...)` would give, without validating again
                item: OutboxItem = construct_validated(OutboxItem, {
                    "idempotency_key": _sha(f"{prefix}{i}", 32), "decision_id": decision.id, "rule": cr.key,
                    "entity_id": state.id, "entity_kind": state.kind, "identities": identities, "action": action,
                    "due_at": float(due), "decided_at": float(ts), "record": {}, "shadow": False,
                })
            else:
                item = OutboxItem(
                    idempotency_key=stable_hash(cr.key, state.id, trigger.id, i, length=32),
                    decision_id=decision.id, rule=cr.key, entity_id=state.id,
                    entity_kind=state.kind,
                    identities=identities, action=action, due_at=due, decided_at=trigger.ts,
                )
            items.append(item)
        after = {"tags": list(state.tags), "score": state.score}
        for item in items:
            item.record = after
        return items


def _leaf_value(leaf: Any, leaf_slots: dict[int, str], ctx: Context, trigger: Trigger,
                snapshot: dict[str, Any]) -> Any:
    if isinstance(leaf, ast.Props):
        s = ctx.state(leaf.scope)
        view = s.view() if s else {}
        return {c.name: view.get(c.name) for c in leaf.checks}
    if isinstance(leaf, ast.EventIs):
        return trigger.etype
    slot = leaf_slots.get(id(leaf))
    return snapshot.get(slot) if slot else None


def _sha(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
