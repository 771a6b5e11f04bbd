"""One evaluation: an event (or a due timer) for one entity → decisions, actions, timers and goals reached.

The evaluator owns the whole stage and its pass loop; the modules it calls compute and build, and none of them
drives matching or calls back:

    decay the score → arm timers (timers.py) → goals that came true (goals.py) → candidate rules (by event type,
    by changed property) → per pass: slots (slots.py) → match (matchers.py) → per matched rule, in priority order:
    guards' verdict (guards.py) → its actions (actions.py), less those trust (trust.py) or the message guards
    refuse → apply them to the state (`_apply`, the one place a decision changes the entity) → the decision
    record and outbox items (records.py) → the rules whose properties just changed are the next pass's
    candidates (at most `MAX_PASSES`, each rule at most once per trigger) → date timers.

Only the evaluator writes to the entity's state, in three visible places: the score's decay and the anchors of
silences at the start of `on_event`/`on_timer`, and a decision's changes in `_count` (its limit's ledger; a
shadow rule's own) and `_apply` (a live rule's actions). Nothing here touches the
store: the pipeline loads state before and saves the `Outcome` after, in one transaction.
"""

from __future__ import annotations

from collections import ChainMap
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..models import STATE_ACTIONS, Action, Decision, OutboxItem
from . import goals, guards, slots, timers
from .build import ActionBuilder
from .compiler import CompiledRule, Program
from .goals import GoalReached
from .matchers import Matcher
from .records import Records
from .state import EntityState
from .timers import Timer
from .trigger import Context, Trigger

MAX_PASSES = 4
SHADOW_LEDGER = "shadow:"
"""Prefix of the counters a shadow rule's limit and cooldown count under in `EntityState.fired`: its own
ledger, which no live rule reads, so turning a rule from shadow to enabled starts its live count afresh."""


@dataclass
class Outcome:
    """What one evaluation hands the pipeline to save with the state, in one transaction."""

    decisions: list[Decision] = field(default_factory=list)
    outbox: list[OutboxItem] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    goals: list[GoalReached] = field(default_factory=list)  # recorded by the pipeline iff they cancelled something


class Evaluator:
    """The decide stage of one program (the compiled packs)."""

    def __init__(self, program: Program, matcher: Matcher):
        self.program = program
        self.matcher = matcher
        self.actions = ActionBuilder(program)
        self.records = Records()
        self._packs = {p.name: p for p in program.packs}

    # ------------------------------------------------------------------ entry points

    def on_event(self, ctx: Context, trigger: Trigger, changed_props: set[str]) -> Outcome:
        state = ctx.subject
        out = Outcome()
        if state.decay(self.program.decay, trigger.ts):
            changed_props = changed_props | {"score"}
        armed, anchors = timers.arm(self.program, ctx, trigger)
        if anchors:
            state.anchors.update(anchors)
        out.timers += armed
        for cr in goals.reached(self.program, ctx, trigger, changed_props):
            out.goals.append(GoalReached(state.id, cr.key, trigger.ts, self.records.goal_decision(cr, ctx, trigger)))
        kind = state.kind
        candidates = [cr for cr in self.program.by_event_type.get(trigger.etype or "", ()) if cr.rule.about == kind]
        candidates += self._by_props(kind, changed_props)
        self._run(ctx, trigger, candidates, out)
        out.timers += timers.dates(self.program, ctx, trigger)
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
        out.timers += timers.dates(self.program, ctx, trigger)
        return out

    # ------------------------------------------------------------------ the pass loop

    def _by_props(self, kind: str, changed: Iterable[str]) -> list[CompiledRule]:
        found: list[CompiledRule] = []
        for name in changed:
            for cr in self.program.by_prop.get((kind, name), ()):
                if cr.rule.about == kind:
                    found.append(cr)
        return found

    def _run(self, ctx: Context, trigger: Trigger, candidates: list[CompiledRule], out: Outcome) -> None:
        done: set[str] = set()
        groups_won = _Groups()
        # A timer's own rule sees the event that set the timer; other rules matched on it see no event.
        own = trigger.seen_by(trigger.rule_key or "") if trigger.kind == "timer" else trigger
        for _ in range(MAX_PASSES):
            todo = {cr.key: cr for cr in candidates if cr.key not in done}
            if not todo:
                return
            matched = self._match(ctx, trigger, own, todo)
            done.update(todo)
            changed: set[str] = set()
            for cr in sorted(todo.values(), key=lambda c: (-c.rule.priority, c.index)):
                seen = matched.get(cr.key)
                if seen is not None:
                    changed |= self._decide(cr, ctx, seen[0], seen[1], groups_won, out)
            candidates = self._by_props(ctx.subject.kind, changed)

    def _match(self, ctx: Context, trigger: Trigger, own: Trigger,
               todo: dict[str, CompiledRule]) -> dict[str, tuple[Trigger, dict[str, Any]]]:
        """The rules of `todo` that match, each with the trigger it saw and the snapshot it matched."""

        if own is trigger or trigger.rule_key not in todo:
            snapshot = slots.snapshot(self.program, ctx, trigger, todo.values())
            return {key: (trigger, snapshot) for key in self.matcher.match(snapshot, todo.values())}
        found: dict[str, tuple[Trigger, dict[str, Any]]] = {}
        for view, rules in ((own, [todo[trigger.rule_key]]),
                            (trigger, [c for k, c in todo.items() if k != trigger.rule_key])):
            if rules:
                snap = slots.snapshot(self.program, ctx, view, rules)
                found.update((key, (view, snap)) for key in self.matcher.match(snap, rules))
        return found

    # ------------------------------------------------------------------ one matched rule

    def _decide(self, cr: CompiledRule, ctx: Context, trigger: Trigger, snapshot: dict[str, Any],
                groups_won: _Groups, out: Outcome) -> set[str]:
        """Guards' verdict → actions → state changes → the decision record; returns the properties changed.

        A shadow rule decides in its own ledger: it sees the group slots live rules took (it would have lost
        to them live too) but takes none from them, and its limit and cooldown count its own shadow firings.
        It changes nothing else and pushes nothing."""

        rule, state = cr.rule, ctx.subject
        shadow = rule.mode == "shadow"
        facts = self.records.facts(cr, ctx, trigger, snapshot)
        counter, per_value = guards.limit_key(cr, ctx, trigger)
        if shadow:
            counter = SHADOW_LEDGER + counter
        slots = groups_won.seen_by_shadow if shadow else groups_won.live
        blocked = guards.rule_guard(cr, state, trigger.ts, slots, counter, per_value)
        if blocked:
            out.decisions.append(self.records.decision(cr, ctx, trigger, "blocked", blocked, facts, []))
            return set()
        if rule.group:
            (groups_won.shadow if shadow else groups_won.live)[rule.group] = rule.id
        planned, notes, stops = self._planned(cr, ctx, trigger)
        if not planned and (notes or stops):
            out.decisions.append(self.records.decision(cr, ctx, trigger, "blocked", "; ".join(notes + stops),
                                                       facts, []))
            return set()
        decision = self.records.decision(cr, ctx, trigger, "shadow" if shadow else "fired", "; ".join(notes),
                                         facts, [a for a, _ in planned])
        out.decisions.append(decision)
        if stops:  # a guard stopped some of its messages: that stop is a blocked decision of its own
            out.decisions.append(self.records.decision(cr, ctx, trigger, "blocked", "; ".join(stops), facts, [],
                                                       kind="guard"))
        self._count(cr, state, counter, trigger.ts)
        if shadow:
            return set()
        changed = self._apply(state, planned, trigger.ts)
        out.outbox += self.records.outbox_items(cr, state, trigger, decision, planned)
        return changed

    def _planned(self, cr: CompiledRule, ctx: Context,
                 trigger: Trigger) -> tuple[list[tuple[Action, float]], list[str], list[str]]:
        """The rule's actions that may be taken, each with when (trust first, then the message guards); a
        sentence for each one that could not be built or trust refused; and one for each a message guard
        (consent, the cap) stopped."""

        pack = self._packs[cr.rule.pack]
        trust = trigger.trust
        planned: list[tuple[Action, float]] = []
        notes: list[str] = []
        stops: list[str] = []
        for spec, built in self.actions.build(cr, ctx, trigger):
            if isinstance(built, str):
                notes.append(built)
                continue
            for action in built:
                if not trust.allows(action):
                    notes.append(f"{spec.path}: {action.type} not done: {trust.refusal()}")
                    continue
                due = trigger.ts + float(spec.after or 0)
                if action.type == "message":
                    due, why = guards.message_guard(action, ctx.subject, pack, due)
                    if why:
                        stops.append(why)
                        continue
                planned.append((action, due))
        return planned, notes, stops

    def _count(self, cr: CompiledRule, state: EntityState, counter: str, now: float) -> None:
        """The firing counts for the rule's limit and cooldown (a shadow rule's in its own ledger)."""

        limit = cr.rule.limit
        state.note_fired(counter, now, float(limit.per) if limit.per else None)

    def _apply(self, state: EntityState, planned: list[tuple[Action, float]], now: float) -> set[str]:
        """The one place a live decision changes the entity: `score`/`tag`/`untag`/`set` apply (later rules see
        them), a message counts towards the per-person cap."""

        changed: set[str] = set()
        for action, _due in planned:
            if action.type in STATE_ACTIONS:
                changed |= state.apply_action(action, now)
            if action.type == "message":
                state.note_message(now)
        return changed


@dataclass
class _Groups:
    """Which rule took each group's slot on this trigger: live rules' slots, and shadow rules' own."""

    live: dict[str, str] = field(default_factory=dict)
    shadow: dict[str, str] = field(default_factory=dict)

    @property
    def seen_by_shadow(self) -> ChainMap[str, str]:
        """A shadow rule loses to a live rule's slot and to another shadow rule's; it never fills a live one."""

        return ChainMap(self.live, self.shadow)
