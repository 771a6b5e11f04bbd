"""Timers an evaluation arms: the end of a wait after an anchor event, the end of a silence, a date coming true.

durable-rules' own timers are wall-clock, one second, and lost on restart, so the host keeps them (the store's
`timers` table, fired by `Pipeline.advance`). Arming reads the state and never changes it: the anchor of a
silence is handed back for the evaluator to keep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..language import ast
from .calendar import add_duration
from .compiler import CompiledRule, Program, Slot
from .predicates import filter_matches, parse_time
from .slots import leaf_id, scope_value
from .trigger import Context, Trigger
from .trust import without_trust


@dataclass
class Timer:
    entity_id: str
    rule_key: str
    key: str  # unique per (entity, rule): re-arming replaces
    due_at: float
    leaf: str = ""
    payload: dict[str, Any] = field(default_factory=dict)


def arm(program: Program, ctx: Context, trigger: Trigger) -> tuple[list[Timer], dict[str, dict[str, Any]]]:
    """The timers this event sets, and the silences it anchors (quiet leaf → the event, without its trust: a
    silence comes due by itself)."""

    state = ctx.subject
    timers = []
    anchors: dict[str, dict[str, Any]] = {}
    anchor = trigger.anchor_payload() or {}
    for cr, node in program.absences_after:
        after = node.after
        assert after is not None  # `absences_after` holds the absences with an `after:` event
        if cr.rule.about != state.kind or after.type != trigger.etype:
            continue
        if not filter_matches(after, trigger.props):
            continue
        due = add_duration(trigger.happened_at, node.within, calendar_of(program, cr))
        same = {f: trigger.props.get(f) for f in node.same}
        timers.append(Timer(state.id, cr.key, f"after:{leaf_id(node)}:{trigger.id}", due, leaf_id(node),
                            {"anchor_ts": trigger.happened_at, "anchor_id": trigger.id, "same": same,
                             "event": anchor}))
    for cr, node in program.absences_quiet:
        if cr.rule.about != state.kind:
            continue
        leaf = leaf_id(node)
        kept = anchors[leaf] if leaf in anchors else state.anchors.get(leaf)
        if trigger.etype == node.filter.type and filter_matches(node.filter, trigger.props):
            # The last such event is the anchor of the silence; history keeps only some of its fields.
            if kept is None or float(kept.get("at") or 0) <= trigger.happened_at:
                kept = anchors[leaf] = without_trust(anchor)
        rows = state.history.get(node.filter.type, [])
        last = max((r[0] for r in rows if filter_matches(node.filter, r[2])), default=None)
        since = last if last is not None else state.first_seen
        if since is not None:
            payload = {"event": kept} if kept is not None and last is not None else {}
            timers.append(Timer(state.id, cr.key, f"quiet:{leaf}", since + float(node.quiet_for or 0), leaf,
                                payload))
    return timers, anchors


def dates(program: Program, ctx: Context, trigger: Trigger) -> list[Timer]:
    """For each dated rule, the next moment one of its date tests becomes true."""

    now = trigger.ts
    anchor = trigger.anchor_payload()
    # A date comes true by itself, not because of an event: its timer carries the latest event only for
    # templates and `per:`, never that event's trust.
    payload = {"event": without_trust(anchor)} if anchor else {}
    timers = []
    for cr, slots in program.dated:
        if cr.rule.about != ctx.subject.kind:
            continue
        moments = []
        for slot in slots:
            value = scope_value(ctx, Trigger("timer", "", now), slot.scope, slot.prop)
            tests = [t for leaf in cr.leaves if isinstance(leaf, ast.Props) for c in leaf.checks
                     if c.name == slot.prop and leaf.scope == slot.scope for t in c.tests]
            moment = next_date_flip(slot, tests, value, now)
            if moment is not None:
                moments.append(moment)
        if moments:
            timers.append(Timer(ctx.subject.id, cr.key, "date", min(moments), payload=payload))
    return timers


def next_date_flip(slot: Slot, tests: list[ast.Test], value: Any, now: float) -> float | None:
    """When, after `now`, a date test on `value` becomes true: the moment to schedule a timer for."""

    when = parse_time(value)
    if when is None:
        return None
    moments = []
    for test in tests:
        seconds = float(test.value or 0)
        moment = {"within_next": when - seconds, "older_than": when + seconds, "past": when + 0.001,
                  "within_last": when}.get(test.op)
        if moment is not None and moment > now:
            moments.append(moment)
    return min(moments) if moments else None


def calendar_of(program: Program, cr: CompiledRule) -> ast.Calendar:
    pack = next(p for p in program.packs if p.name == cr.rule.pack)
    return pack.calendar
