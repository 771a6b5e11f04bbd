"""One evaluation: an event (or a due timer) for one entity → decisions, actions and new timers.

Steps, in event time: decay the score → pick the rules this trigger can affect → compute their slots →
match (durable-rules) → guards in priority order → apply state changes → rules whose properties just changed
are matched again (at most a few passes, each rule fires at most once per trigger).
Nothing here touches the store: the pipeline loads state before and saves the outcome after, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable

from ..language import ast
from ..models import Decision, OutboxItem, stable_hash
from .compiler import CompiledRule, Program, Slot, coerce, tally_key
from .matchers import Matcher, evaluate_json
from .state import (EntityState, check_passes, date_delta, due_after, filter_matches, next_date_flip,
                    test_passes)

MAX_PASSES = 4


@dataclass
class Trigger:
    """What an evaluation is about: an event, or a timer that came due."""

    kind: str  # "event" | "timer"
    id: str
    ts: float
    etype: str | None = None
    props: dict[str, Any] = field(default_factory=dict)
    rule_key: str | None = None
    leaf: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    event_ts: float | None = None  # when the event happened, if it arrived late (ts is then the entity's "now")
    source: str = ""
    # May this trigger unlock privileged actions (CRM writes, tasks, email)? None: decide from source and state.
    # The pipeline sets it: an untrusted source's event counts only when it came through an id a trusted
    # source vouched for (see core/identity.py).
    trusted: bool | None = None

    @property
    def happened_at(self) -> float:
        return self.ts if self.event_ts is None else self.event_ts

    @property
    def anchor(self) -> dict[str, Any] | None:
        """For a timer: the event that set it ({type, id, at, props}), carried in its payload."""

        return self.payload.get("event") if self.kind == "timer" else None

    def seen_by(self, rule_key: str) -> "Trigger":
        """What one rule sees of this trigger: a timer shows the rule that set it the event that set it, as if
        that event were being evaluated (type and properties for `event:` conditions, templates, `per:`)."""

        anchor = self.anchor
        if not anchor or rule_key != self.rule_key:
            return self
        return replace(self, etype=anchor.get("type"), props=dict(anchor.get("props") or {}))

    def anchor_payload(self) -> dict[str, Any] | None:
        """This trigger's event, to carry in the payload of a timer it sets (a timer passes its own on)."""

        if self.kind == "timer":
            return self.anchor
        return {"type": self.etype, "id": self.id, "at": self.happened_at, "props": dict(self.props),
                "trusted": self.trusted}


@dataclass
class Timer:
    entity_id: str
    rule_key: str
    key: str  # unique per (entity, rule): re-arming replaces
    due_at: float
    leaf: str = ""
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    decisions: list[Decision] = field(default_factory=list)
    outbox: list[OutboxItem] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    cancel_timers: list[tuple[str, str]] = field(default_factory=list)
    cancel_outbox: list[tuple[str, str, float]] = field(default_factory=list)
    # goal decisions by id → (entity, rule): the pipeline keeps one only if cancelling removed something
    goals: dict[str, tuple[str, str]] = field(default_factory=dict)
    changed: bool = False

    def extend(self, other: "Outcome") -> None:
        self.decisions += other.decisions
        self.outbox += other.outbox
        self.timers += other.timers
        self.cancel_timers += other.cancel_timers
        self.cancel_outbox += other.cancel_outbox
        self.goals.update(other.goals)
        self.changed = self.changed or other.changed


@dataclass
class Context:
    """The entity being evaluated and the records around it (its account, its deal, the event's lead)."""

    subject: EntityState
    related: dict[str, EntityState] = field(default_factory=dict)

    def state(self, scope: str) -> EntityState | None:
        if scope == self.subject.kind:
            return self.subject
        return self.related.get(scope)


def leaf_id(node: Any) -> str:
    return stable_hash(type(node).__name__, node.path, node.line, repr(node), length=10)


class Evaluator:
    def __init__(self, program: Program, matcher: Matcher, deciders: "Any"):
        self.program = program
        self.matcher = matcher
        self.deciders = deciders  # decisions.Guards: limits, consent, caps, rendering
        self._rules_by_about: dict[str, list[CompiledRule]] = {}
        for cr in program.rules:
            self._rules_by_about.setdefault(cr.rule.about, []).append(cr)

    # ------------------------------------------------------------------ entry points

    def on_event(self, ctx: Context, trigger: Trigger, changed_props: set[str]) -> Outcome:
        state = ctx.subject
        out = Outcome()
        if state.decay(self.program.decay, trigger.ts):
            changed_props = changed_props | {"score"}
        out.timers += self._arm_timers(ctx, trigger)
        self._goals(ctx, trigger, changed_props, out)
        kind = state.kind
        candidates = [cr for cr in self.program.by_event_type.get(trigger.etype or "", ()) if cr.rule.about == kind]
        candidates += self._by_props(kind, changed_props)
        self._run(ctx, trigger, candidates, out)
        out.timers += self._date_timers(ctx, trigger)
        return out

    def on_timer(self, ctx: Context, trigger: Trigger) -> Outcome:
        out = Outcome()
        cr = self.program.by_key.get(trigger.rule_key or "")
        if cr is None or cr.rule.about != ctx.subject.kind:
            return out  # the rule was removed or disabled since the timer was set
        changed: set[str] = set()
        if ctx.subject.decay(self.program.decay, trigger.ts):
            changed.add("score")
        self._run(ctx, trigger, [cr] + self._by_props(ctx.subject.kind, changed), out)
        out.timers += self._date_timers(ctx, trigger)
        return out

    # ------------------------------------------------------------------ matching passes

    def _by_props(self, kind: str, changed: Iterable[str]) -> list[CompiledRule]:
        found: list[CompiledRule] = []
        for name in changed:
            for scope in ("lead", "account", "deal"):
                for cr in self.program.by_prop.get((scope, name), ()):
                    if cr.rule.about == kind and (scope == kind):
                        found.append(cr)
        return found

    def _run(self, ctx: Context, trigger: Trigger, candidates: list[CompiledRule], out: Outcome) -> None:
        done: set[str] = set()
        groups_won: dict[str, str] = {}
        # A timer's own rule sees the event that set the timer; other rules matched on it see no event.
        own = trigger.seen_by(trigger.rule_key or "") if trigger.kind == "timer" else trigger
        for _ in range(MAX_PASSES):
            todo = {cr.key: cr for cr in candidates if cr.key not in done}
            if not todo:
                return
            if own is trigger or trigger.rule_key not in todo:
                snapshot = self.snapshot(ctx, trigger, todo.values())
                matched = self.matcher.match(snapshot, todo.values())
                views = None
            else:
                views = {}
                matched = set()
                for view, rules in ((own, [todo[trigger.rule_key]]),
                                    (trigger, [c for k, c in todo.items() if k != trigger.rule_key])):
                    if rules:
                        snap = self.snapshot(ctx, view, rules)
                        matched |= self.matcher.match(snap, rules)
                        views.update({c.key: (view, snap) for c in rules})
            done.update(todo)
            changed: set[str] = set()
            for cr in sorted(todo.values(), key=lambda c: (-c.rule.priority, c.index)):
                if cr.key not in matched:
                    continue
                seen, snap = views[cr.key] if views else (trigger, snapshot)
                result = self.deciders.decide(cr, ctx, seen, snap, groups_won)
                out.extend(result.outcome)
                changed |= result.changed
            candidates = self._by_props(ctx.subject.kind, changed)

    # ------------------------------------------------------------------ slots

    def snapshot(self, ctx: Context, trigger: Trigger, rules: Iterable[CompiledRule]) -> dict[str, Any]:
        needed: set[str] = set()
        for cr in rules:
            needed.update(cr.slots)
        slots = self.program.slots
        return {name: self.slot_value(slots[name], ctx, trigger) for name in needed}

    def slot_value(self, slot: Slot, ctx: Context, trigger: Trigger) -> Any:
        now = trigger.ts
        src = slot.source
        if src == "etype":  # a timer has none, unless `seen_by` gave its own rule the event that set it
            return trigger.etype
        if src == "event":
            return coerce(trigger.props.get(slot.prop), slot.kind)
        if src in ("prop", "date", "test"):
            value = self._scope_value(ctx, trigger, slot.scope, slot.prop)
            if src == "prop":
                return coerce(value, slot.kind)
            if src == "date":
                return date_delta(value, now)
            if value is None and slot.scope == "event":
                return False
            return test_passes(slot.test, value, now)
        node = slot.node
        state = ctx.subject
        if src == "tally":
            return self.tally(state, node, now, trigger)[0]
        if src == "sequence":
            return self.sequence(state, node, now) is not None
        if src == "absence":
            return self.absence(state, node, trigger)
        raise ValueError(f"unknown slot source {src}")

    def _scope_value(self, ctx: Context, trigger: Trigger, scope: str, name: str) -> Any:
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

    # ------------------------------------------------------------------ history conditions

    def tally(self, state: EntityState, node: ast.Tally, now: float,
              trigger: Trigger | None = None) -> tuple[float, list[str]]:
        """(count or sum, ids of the events counted) in (now - within, now]; with `same:`, of one value's events
        only (see `_same_rows`)."""

        if node.within is None:
            count, total, _first, _last = state.ever.get(tally_key(node), [0, 0.0, 0, 0])
            return (total if node.sum_of else float(count)), []
        rows = state.events(node.filter, now - float(node.within), now)
        if node.same:
            rows = self._same_rows(node, rows, trigger)
        if node.sum_of:
            return sum(coerce(r[2].get(node.sum_of), "num") or 0.0 for r in rows), [r[1] for r in rows]
        return float(len(rows)), [r[1] for r in rows]

    def _same_rows(self, node: ast.Tally, rows: list[list[Any]], trigger: Trigger | None) -> list[list[Any]]:
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
        if (trigger is not None and trigger.etype == node.filter.type
                and filter_matches(node.filter, trigger.props) and key(trigger.props) is not None):
            return groups.get(key(trigger.props), [])  # type: ignore[arg-type]
        best: list[list[Any]] = []
        for group in groups.values():
            value = total(group)
            if (node.at_least is None or value >= node.at_least) and (node.at_most is None or value <= node.at_most):
                return group
            if not best or value > total(best):
                best = group
        return best

    def sequence(self, state: EntityState, node: ast.Sequence, now: float) -> list[str] | None:
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

    def absence(self, state: EntityState, node: ast.Absence, trigger: Trigger) -> bool:
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

    # ------------------------------------------------------------------ timers

    def _arm_timers(self, ctx: Context, trigger: Trigger) -> list[Timer]:
        state = ctx.subject
        timers = []
        anchor = trigger.anchor_payload() or {}
        for cr, node in self.program.absences_after:
            if cr.rule.about != state.kind or node.after.type != trigger.etype:
                continue
            if not filter_matches(node.after, trigger.props):
                continue
            calendar = self._calendar(cr)
            due = due_after(trigger.happened_at, node.within, calendar)
            same = {f: trigger.props.get(f) for f in node.same}
            timers.append(Timer(state.id, cr.key, f"after:{leaf_id(node)}:{trigger.id}", due, leaf_id(node),
                                {"anchor_ts": trigger.happened_at, "anchor_id": trigger.id, "same": same,
                                 "event": anchor}))
        for cr, node in self.program.absences_quiet:
            if cr.rule.about != state.kind:
                continue
            leaf = leaf_id(node)
            if trigger.etype == node.filter.type and filter_matches(node.filter, trigger.props):
                # The last such event is the anchor of the silence; history keeps only some of its fields.
                kept = state.anchors.get(leaf)
                if kept is None or float(kept.get("at") or 0) <= trigger.happened_at:
                    state.anchors[leaf] = {k: v for k, v in anchor.items() if k != "trusted"}
            rows = state.history.get(node.filter.type, [])
            last = max((r[0] for r in rows if filter_matches(node.filter, r[2])), default=None)
            since = last if last is not None else state.first_seen
            if since is not None:
                payload = {"event": state.anchors[leaf]} if leaf in state.anchors and last is not None else {}
                timers.append(Timer(state.id, cr.key, f"quiet:{leaf}", since + float(node.quiet_for), leaf, payload))
        return timers

    def _date_timers(self, ctx: Context, trigger: Trigger) -> list[Timer]:
        now = trigger.ts
        anchor = trigger.anchor_payload()
        # A date comes true by itself, not because of an event: its timer carries the latest event only for
        # templates and `per:`, never that event's trust.
        payload = {"event": {k: v for k, v in anchor.items() if k != "trusted"}} if anchor else {}
        timers = []
        for cr, slots in self.program.dated:
            if cr.rule.about != ctx.subject.kind:
                continue
            moments = []
            for slot in slots:
                value = self._scope_value(ctx, Trigger("timer", "", now), slot.scope, slot.prop)
                tests = [t for leaf in cr.leaves if isinstance(leaf, ast.Props) for c in leaf.checks
                         if c.name == slot.prop and leaf.scope == slot.scope for t in c.tests]
                moment = next_date_flip(slot, tests, value, now)
                if moment is not None:
                    moments.append(moment)
            if moments:
                timers.append(Timer(ctx.subject.id, cr.key, "date", min(moments), payload=payload))
        return timers

    def _calendar(self, cr: CompiledRule) -> ast.Calendar:
        pack = next(p for p in self.program.packs if p.name == cr.rule.pack)
        return pack.calendar

    # ------------------------------------------------------------------ goals

    def _goals(self, ctx: Context, trigger: Trigger, changed: set[str], out: Outcome) -> None:
        kind = ctx.subject.kind
        rules = list(self.program.goals_by_event_type.get(trigger.etype or "", ()))
        for name in changed:
            rules += self.program.goals_by_prop.get((kind, name), [])
        seen = set()
        for cr in rules:
            if cr.key in seen or cr.rule.about != kind:
                continue
            seen.add(cr.key)
            snapshot = {s: self.slot_value(self.program.slots[s], ctx, trigger) for s in _slots(cr.goal_expr)}
            if evaluate_json(cr.goal_json, snapshot):
                out.cancel_timers.append((ctx.subject.id, cr.key))
                out.cancel_outbox.append((ctx.subject.id, cr.key, trigger.ts))
                decision = self.deciders.goal_decision(cr, ctx, trigger)
                out.decisions.append(decision)
                out.goals[decision.id] = (ctx.subject.id, cr.key)


def _slots(expr: Any) -> set[str]:
    if expr[0] in ("and", "or"):
        out: set[str] = set()
        for e in expr[1]:
            out |= _slots(e)
        return out
    return {expr[2]}
