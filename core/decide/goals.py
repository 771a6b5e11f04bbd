"""Goals: a rule's `goal:` came true, so what that rule still has waiting (timers, delayed actions) goes.

Deciding a goal takes two looks: its condition (here, on the evaluated state) and whether anything of that rule
was waiting (only the store knows, and only once the batch's earlier actions are written). So the decide stage
hands the pipeline a `GoalReached` per goal that came true, with the decision that records it, and the pipeline
cancels and records that decision iff the cancel removed something (`Pipeline._reach_goals`): a goal reached
with nothing waiting leaves no trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ..models import Decision
from .compiler import CompiledRule, Program
from .matchers import evaluate_json
from .slots import slot_value
from .trigger import Context, Trigger


@dataclass
class GoalReached:
    """Cancel `rule_key`'s timers and its actions still pending for `entity_id` (due after `at`); record
    `decision` only if that removed something."""

    entity_id: str
    rule_key: str
    at: float
    decision: Decision


def reached(program: Program, ctx: Context, trigger: Trigger, changed: Iterable[str]) -> list[CompiledRule]:
    """The rules whose goal this trigger (its event type, the properties it changed) makes true."""

    kind = ctx.subject.kind
    rules = list(program.goals_by_event_type.get(trigger.etype or "", ()))
    for name in changed:
        rules += program.goals_by_prop.get((kind, name), [])
    seen = set()
    found = []
    for cr in rules:
        if cr.key in seen or cr.rule.about != kind or cr.goal_json is None:
            continue
        seen.add(cr.key)
        snapshot = {s: slot_value(program.slots[s], ctx, trigger) for s in _slots(cr.goal_expr)}
        if evaluate_json(cr.goal_json, snapshot):
            found.append(cr)
    return found


def _slots(expr: Any) -> set[str]:
    if expr[0] in ("and", "or"):
        out: set[str] = set()
        for e in expr[1]:
            out |= _slots(e)
        return out
    return {expr[2]}
