"""The value of each slot of a snapshot: what the host computes before durable-rules compares.

Event time, history and coercion live here (see compiler.py for the split): event and record fields coerced to
the rule's type, seconds until a date, `contains`/`matches`/plugin tests, counts and sums over windows,
sequences, and absences. Read-only: nothing here changes a state. `explain` calls `tally`, `sequence` and
`absence` to show what was found.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..language import ast
from ..models import stable_hash
from .compiler import CompiledRule, Program, Slot, coerce, tally_key
from .predicates import date_delta, filter_matches, test_passes
from .state import EntityState
from .trigger import Context, Trigger


def leaf_id(node: Any) -> str:
    """A condition part's stable name: the key of the timer an absence arms, and how its timer finds it again."""

    return stable_hash(type(node).__name__, node.path, node.line, repr(node), length=10)


def snapshot(program: Program, ctx: Context, trigger: Trigger, rules: Iterable[CompiledRule]) -> dict[str, Any]:
    """Every slot the candidate rules use, each present (`None` when unknown: `$nex` on an absent key hangs
    the engine)."""

    needed: set[str] = set()
    for cr in rules:
        needed.update(cr.slots)
    slots = program.slots
    return {name: slot_value(slots[name], ctx, trigger) for name in needed}


def slot_value(slot: Slot, ctx: Context, trigger: Trigger) -> Any:
    now = trigger.ts
    src = slot.source
    if src == "etype":  # a timer has none, unless `seen_by` gave its own rule the event that set it
        return trigger.etype
    if src == "event":
        return coerce(trigger.props.get(slot.prop), slot.kind)
    if src in ("prop", "date", "test"):
        value = scope_value(ctx, trigger, slot.scope, slot.prop)
        if src == "prop":
            return coerce(value, slot.kind)
        if src == "date":
            return date_delta(value, now)
        if value is None and slot.scope == "event":
            return False
        assert slot.test is not None  # the compiler gives every "test" slot its test
        return test_passes(slot.test, value, now)
    node = slot.node
    state = ctx.subject
    if src == "tally":
        return tally(state, node, now, trigger)[0]
    if src == "sequence":
        return sequence(state, node, now) is not None
    if src == "absence":
        return absence(state, node, trigger)
    raise ValueError(f"unknown slot source {src}")


def scope_value(ctx: Context, trigger: Trigger, scope: str, name: str) -> Any:
    """One field as a rule reads it: of the event, or of the lead/account/deal (with its tags and score)."""

    if scope == "event":
        return trigger.props.get(name)
    state = ctx.state(scope)
    if state is None:
        return None
    if name == "tags":
        return list(state.tags)
    if name == "score":
        return state.score
    return state.props.get(name)


# ---------------------------------------------------------------------- history conditions

def tally(state: EntityState, node: ast.Tally, now: float, trigger: Trigger | None = None) -> tuple[float, list[str]]:
    """(count or sum, ids of the events counted) in (now - within, now]; with `same:`, of one value's events
    only (see `_same_rows`)."""

    if node.within is None:
        count, total, _first, _last = state.ever.get(tally_key(node), [0, 0.0, 0, 0])
        return (total if node.sum_of else float(count)), []
    rows = state.events(node.filter, now - float(node.within), now)
    if node.same:
        rows = _same_rows(node, rows, trigger)
    if node.sum_of:
        return sum(coerce(r[2].get(node.sum_of), "num") or 0.0 for r in rows), [r[1] for r in rows]
    return float(len(rows)), [r[1] for r in rows]


def _same_rows(node: ast.Tally, rows: list[list[Any]], trigger: Trigger | None) -> list[list[Any]]:
    """`same:` — the rows of the value of the event being evaluated, when it is one of the events counted
    (decided at the third view: views of *this* product); otherwise those of a value whose count or sum
    meets the bounds, or the largest when none does, so that `not:` reads "no value does". Events without
    the property count for no value."""

    def key(props: dict[str, Any]) -> tuple[str, ...] | None:
        values = [props.get(f) for f in node.same]
        return None if any(v is None or v == "" for v in values) else tuple(str(v) for v in values)

    def total(group: list[list[Any]]) -> float:
        if node.sum_of:
            return sum(coerce(r[2].get(node.sum_of), "num") or 0.0 for r in group)
        return float(len(group))

    groups: dict[tuple[str, ...], list[list[Any]]] = {}
    for row in rows:
        k = key(row[2])
        if k is not None:
            groups.setdefault(k, []).append(row)
    if trigger is not None and trigger.etype == node.filter.type and filter_matches(node.filter, trigger.props):
        own = key(trigger.props)
        if own is not None:
            return groups.get(own, [])
    best: list[list[Any]] = []
    for group in groups.values():
        value = total(group)
        if (node.at_least is None or value >= node.at_least) and (node.at_most is None or value <= node.at_most):
            return group
        if not best or value > total(best):
            best = group
    return best


def sequence(state: EntityState, node: ast.Sequence, now: float) -> list[str] | None:
    """The ids of one run of the steps in order within `within`, ending at or before now."""

    window = float(node.within)
    lasts = state.events(node.steps[-1], now - window, now)
    for last in reversed(lasts):
        chain = [last]
        end = last[0]
        ok = True
        for step in reversed(node.steps[:-1]):
            earlier = [r for r in state.events(step, end - window - 1e-9, chain[0][0])
                       if r[0] <= chain[0][0] and r[1] != chain[0][1]
                       and all(r[2].get(f) == last[2].get(f) for f in node.same)]
            if not earlier:
                ok = False
                break
            chain.insert(0, earlier[-1])
        if ok and chain[-1][0] - chain[0][0] <= window:
            return [r[1] for r in chain]
    return None


def absence(state: EntityState, node: ast.Absence, trigger: Trigger) -> bool:
    """`no:` — quiet for long enough, or (after an anchor event) nothing came before its timer did."""

    now = trigger.ts
    if node.quiet_for is not None:
        rows = state.history.get(node.filter.type, [])
        last = max((r[0] for r in rows if r[0] <= now and filter_matches(node.filter, r[2])), default=None)
        since = last if last is not None else state.first_seen
        return since is not None and now - since >= float(node.quiet_for)
    if trigger.kind != "timer" or trigger.leaf != leaf_id(node):
        return False  # only the timer set by the `after` event can say "nothing came in time"
    anchor = float(trigger.payload["anchor_ts"])
    same = trigger.payload.get("same", {})
    rows = state.events(node.filter, anchor - 1e-9, now)
    return not any(all(r[2].get(k) == v for k, v in same.items()) for r in rows)
