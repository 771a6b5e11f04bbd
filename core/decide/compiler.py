"""Rules → durable-rules rulesets over a flat snapshot of "slots".

Who does what (the split every maintainer should know):
- durable-rules matches each rule's boolean structure (all/any/not) and every plain comparison
  (=, ≠, ≥, >, ≤, <, in, missing/exists) against the snapshot.
- the host computes each slot's value before matching: event-time counts and sums, sequences, absences,
  days until/since a date, `contains` and `matches` (Python regex, not the engine's own dialect), and
  coerces CRM strings ("42", "true") to the type the test needs.
Snapshots carry only the slots the candidate rules use (durable-rules takes ≤ 254 properties per message),
every slot is present (null when unknown) because `$nex` on an absent key hangs the engine, and `not` is
pushed down to the leaves with explicit null handling because a comparison with null is false there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..language import ast
from ..models import stable_hash

MAX_SLOTS_PER_RULESET = 240
MAX_RULES_PER_RULESET = 64
RETENTION_SLACK = 86400.0  # out-of-order events up to a day late still count in their window


@dataclass(frozen=True)
class Slot:
    """One value of the snapshot: what it is computed from and how to coerce it."""

    name: str
    source: str  # etype | event | prop | date | tally | sequence | absence | test
    scope: str = ""
    prop: str = ""
    kind: str = "raw"  # raw | num | bool | str
    node: Any = None
    test: ast.Test | None = None


@dataclass
class CompiledRule:
    rule: ast.Rule
    index: int
    key: str
    expr: Any  # IR: ("and", [...]) | ("or", [...]) | ("cmp", op, slot, value)
    json: dict[str, Any]
    slots: list[str]
    leaves: list[Any]
    trigger_types: set[str]
    trigger_props: set[tuple[str, str]]
    timed: bool
    goal_expr: Any = None
    goal_json: dict[str, Any] | None = None
    goal_types: set[str] = field(default_factory=set)
    goal_props: set[tuple[str, str]] = field(default_factory=set)
    leaf_slots: dict[int, str] = field(default_factory=dict)  # id(leaf) → its slot, for history leaves


@dataclass
class Program:
    """Everything the evaluator needs from the packs, indexed for the per-event hot path."""

    packs: list[ast.Pack]
    rules: list[CompiledRule]
    slots: dict[str, Slot]
    rulesets: list[dict[str, Any]]  # [{name: {rN: {"all": [...]}}}] without `run`; the matcher adds them
    ruleset_of: dict[str, int]
    by_event_type: dict[str, list[CompiledRule]]
    by_prop: dict[tuple[str, str], list[CompiledRule]]
    goals_by_event_type: dict[str, list[CompiledRule]]
    goals_by_prop: dict[tuple[str, str], list[CompiledRule]]
    tracked_types: dict[str, float]  # event type → how long its history is kept (seconds)
    tracked_fields: dict[str, set[str]]  # event type → properties kept in history
    ever_tallies: list[ast.Tally]
    absences_after: list[tuple[CompiledRule, ast.Absence]]
    absences_quiet: list[tuple[CompiledRule, ast.Absence]]
    dated: list[tuple[CompiledRule, list[Slot]]]
    by_key: dict[str, CompiledRule]
    decay: ast.Decay | None
    version: str


class _Builder:
    def __init__(self) -> None:
        self.slots: dict[str, Slot] = {}
        self._ids: dict[tuple[Any, ...], str] = {}
        self.leaf_slots: dict[int, str] = {}

    def slot(self, source: str, key: tuple[Any, ...], **kw: Any) -> str:
        ident = (source, *key)
        if kw.get("node") is not None:
            self.leaf_slots[id(kw["node"])] = self._ids.get(ident) or f"s{len(self._ids)}"
        if ident not in self._ids:
            name = f"s{len(self._ids)}"
            self._ids[ident] = name
            self.slots[name] = Slot(name=name, source=source, **kw)
        return self._ids[ident]

    # --- leaves → IR

    def condition(self, node: ast.Condition, out_leaves: list[Any]) -> Any:
        if isinstance(node, ast.AllOf):
            return ("and", [self.condition(i, out_leaves) for i in node.items])
        if isinstance(node, ast.AnyOf):
            return ("or", [self.condition(i, out_leaves) for i in node.items])
        if isinstance(node, ast.Not):
            return negate(self.condition(node.item, out_leaves))
        out_leaves.append(node)
        if isinstance(node, ast.EventIs):
            etype = self.slot("etype", (), kind="str")
            parts: list[Any] = [("cmp", "eq", etype, node.filter.type)]
            parts += [self.check("event", c) for c in node.filter.where]
            return ("and", parts)
        if isinstance(node, ast.Props):
            return ("and", [self.check(node.scope, c) for c in node.checks])
        if isinstance(node, ast.Tally):
            name = self.slot("tally", (tally_key(node),), kind="num", node=node)
            bounds: list[Any] = []
            if node.at_least is not None:
                bounds.append(("cmp", "ge", name, node.at_least))
            if node.at_most is not None:
                bounds.append(("cmp", "le", name, node.at_most))
            return ("and", bounds)
        if isinstance(node, ast.Sequence):
            return ("cmp", "eq", self.slot("sequence", (node.path, node.line, repr(node)), kind="bool", node=node), True)
        if isinstance(node, ast.Absence):
            return ("cmp", "eq", self.slot("absence", (node.path, node.line, repr(node)), kind="bool", node=node), True)
        raise TypeError(f"unknown condition node {node!r}")

    def check(self, scope: str, check: ast.Check) -> Any:
        return ("and", [self.test(scope, check.name, t) for t in check.tests])

    def test(self, scope: str, name: str, test: ast.Test) -> Any:
        source = "event" if scope == "event" else "prop"
        op, value = test.op, test.value
        if op in ("contains", "matches", "func"):
            slot = self.slot("test", (scope, name, op, repr(value)), scope=scope, prop=name, kind="bool", test=test)
            return ("cmp", "eq", slot, True)
        if op in ("within_next", "within_last", "older_than", "past", "future"):
            slot = self.slot("date", (scope, name), scope=scope, prop=name, kind="num")
            seconds = float(value) if value is not None else 0.0
            return {
                "within_next": ("and", [("cmp", "ge", slot, 0.0), ("cmp", "le", slot, seconds)]),
                "within_last": ("and", [("cmp", "le", slot, 0.0), ("cmp", "ge", slot, -seconds)]),
                "older_than": ("cmp", "le", slot, -seconds),
                "past": ("cmp", "lt", slot, 0.0),
                "future": ("cmp", "gt", slot, 0.0),
            }[op]
        if op in ("missing", "exists"):
            slot = self.slot(source, (scope, name, "raw"), scope=scope, prop=name, kind="raw")
            return ("cmp", "eq" if op == "missing" else "neq", slot, None)
        kind = value_kind(value)
        if op in ("ge", "gt", "le", "lt"):
            kind = "num"
        slot = self.slot(source, (scope, name, kind), scope=scope, prop=name, kind=kind)
        if op in ("in", "not_in"):
            values = [coerce(v, value_kind(v)) for v in value]
            kinds = {value_kind(v) for v in value}
            if len(kinds) > 1:
                kind = "str"
                slot = self.slot(source, (scope, name, "str"), scope=scope, prop=name, kind="str")
                values = [coerce(v, "str") for v in value]
            either = ("or", [("cmp", "eq", slot, v) for v in values])
            return either if op == "in" else negate(either)
        if op == "eq":
            return ("cmp", "eq", slot, coerce(value, kind))
        if op == "neq":
            return negate(("cmp", "eq", slot, coerce(value, kind)))
        return ("cmp", op, slot, float(value))


def value_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "num"
    return "str"


def coerce(value: Any, kind: str) -> Any:
    """CRM values arrive as strings more often than not; compare them as the rule's value is typed."""

    if value is None or value == "":
        return None  # a CRM clears a field by sending "": for every test it is missing
    if kind == "num":
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return float(str(value).strip().replace(",", ""))
        except ValueError:
            return None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "y", "1", "on"):
            return True
        if text in ("false", "no", "n", "0", "off", ""):
            return False
        return None
    if kind == "str":
        if isinstance(value, (dict, list)):
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    if isinstance(value, (dict, list)):
        return None
    return value


_OPPOSITE = {"ge": "lt", "gt": "le", "le": "gt", "lt": "ge"}


def negate(expr: Any) -> Any:
    """not(expr), pushed to the leaves; an unknown (null) value satisfies the negation of a comparison."""

    tag = expr[0]
    if tag == "and":
        return ("or", [negate(e) for e in expr[1]])
    if tag == "or":
        return ("and", [negate(e) for e in expr[1]])
    _, op, slot, value = expr
    if op == "eq" and value is None:
        return ("cmp", "neq", slot, None)
    if op == "neq" and value is None:
        return ("cmp", "eq", slot, None)
    if op == "eq" and isinstance(value, bool):
        return ("or", [("cmp", "eq", slot, not value), ("cmp", "eq", slot, None)])
    if op == "eq":
        return ("or", [("cmp", "neq", slot, value), ("cmp", "eq", slot, None)])
    if op == "neq":
        return ("cmp", "eq", slot, value)
    return ("or", [("cmp", _OPPOSITE[op], slot, value), ("cmp", "eq", slot, None)])


def to_durable(expr: Any) -> dict[str, Any]:
    """IR → durable-rules' JSON condition form."""

    tag = expr[0]
    if tag in ("and", "or"):
        items = [to_durable(e) for e in expr[1]]
        if len(items) == 1:
            return items[0]
        return {"$and" if tag == "and" else "$or": items}
    _, op, slot, value = expr
    if op == "eq":
        return {slot: value}
    return {f"${'neq' if op == 'neq' else op.replace('ge', 'gte').replace('le', 'lte')}": {slot: value}}


def tally_key(node: ast.Tally) -> str:
    if node.same:  # its value depends on the bounds (which value is picked when no event names one)
        return stable_hash("tally", node.filter.describe(), node.within and float(node.within), node.sum_of,
                           list(node.same), node.at_least, node.at_most, length=12)
    return stable_hash("tally", node.filter.describe(), node.within and float(node.within), node.sum_of, length=12)


def engine_condition(cond: ast.Condition) -> tuple[dict[str, Any], int]:
    """One `when:` as durable-rules gets it, and how many slots it needs: what the loader checks against the
    engine's limits (core/language/limits.py), so `check` finds what would stop `run`."""

    expr = _Builder().condition(cond, [])
    return to_durable(expr), len(_slots_in(expr, set()))


def _slots_in(expr: Any, out: set[str]) -> set[str]:
    if expr[0] in ("and", "or"):
        for e in expr[1]:
            _slots_in(e, out)
    else:
        out.add(expr[2])
    return out


def _triggers(leaves: list[Any], event_types: set[str], props: set[tuple[str, str]]) -> None:
    explicit = [leaf for leaf in leaves if isinstance(leaf, ast.EventIs)]
    for leaf in leaves:
        if isinstance(leaf, ast.Props):
            for check in leaf.checks:
                props.add((leaf.scope, check.name))
    if explicit:
        event_types.update(leaf.filter.type for leaf in explicit)
        return
    for leaf in leaves:
        if isinstance(leaf, ast.Tally):
            event_types.add(leaf.filter.type)
        elif isinstance(leaf, ast.Sequence):
            event_types.add(leaf.steps[-1].type)


def compile_packs(packs: list[ast.Pack]) -> Program:
    builder = _Builder()
    compiled: list[CompiledRule] = []
    tracked: dict[str, float] = {}
    fields: dict[str, set[str]] = {}
    ever: dict[str, ast.Tally] = {}
    after: list[tuple[CompiledRule, ast.Absence]] = []
    quiet: list[tuple[CompiledRule, ast.Absence]] = []
    dated: list[tuple[CompiledRule, list[Slot]]] = []

    def track(flt: ast.EventFilter, keep: float, extra: tuple[str, ...] = ()) -> None:
        tracked[flt.type] = max(tracked.get(flt.type, 0.0), keep + RETENTION_SLACK)
        fields.setdefault(flt.type, set()).update(c.name for c in flt.where)
        fields[flt.type].update(extra)

    for pack in packs:
        for rule in pack.rules:
            if rule.mode == "disabled":
                continue
            leaves: list[Any] = []
            builder.leaf_slots = {}
            expr = builder.condition(rule.when, leaves)
            goal_leaves: list[Any] = []
            goal_expr = builder.condition(rule.goal, goal_leaves) if rule.goal else None
            types: set[str] = set()
            props: set[tuple[str, str]] = set()
            _triggers(leaves, types, props)
            goal_types: set[str] = set()
            goal_props: set[tuple[str, str]] = set()
            if goal_leaves:
                _triggers(goal_leaves, goal_types, goal_props)
            key = f"{pack.name}/{rule.id}"
            cr = CompiledRule(rule, len(compiled), key, expr, to_durable(expr), sorted(_slots_in(expr, set())),
                              leaves, types, props, False, goal_expr,
                              to_durable(goal_expr) if goal_expr else None, goal_types, goal_props,
                              dict(builder.leaf_slots))
            for leaf in leaves + goal_leaves:
                if isinstance(leaf, ast.Tally):
                    if leaf.within is None:
                        ever[tally_key(leaf)] = leaf
                    else:
                        track(leaf.filter, float(leaf.within), ((leaf.sum_of,) if leaf.sum_of else ()) + leaf.same)
                elif isinstance(leaf, ast.Sequence):
                    for step in leaf.steps:
                        track(step, float(leaf.within), leaf.same)
                elif isinstance(leaf, ast.Absence):
                    cr.timed = True
                    if leaf.after is not None:
                        track(leaf.filter, _calendar_span(leaf.within), leaf.same)
                        after.append((cr, leaf))
                    else:
                        track(leaf.filter, float(leaf.quiet_for or 0))  # an absence without `after:` has `for:`
                        quiet.append((cr, leaf))
            date_slots = [builder.slots[s] for s in cr.slots if builder.slots[s].source == "date"]
            if date_slots:
                cr.timed = True
                dated.append((cr, date_slots))
            compiled.append(cr)

    rulesets: list[dict[str, Any]] = []
    ruleset_of: dict[str, int] = {}
    current: dict[str, Any] = {}
    current_slots: set[str] = set()
    for cr in compiled:
        needed = current_slots | set(cr.slots)
        if current and (len(current) >= MAX_RULES_PER_RULESET or len(needed) > MAX_SLOTS_PER_RULESET):
            rulesets.append(current)
            current, current_slots, needed = {}, set(), set(cr.slots)
        current[f"r{cr.index}"] = {"all": [{"m": cr.json}]}
        current_slots = needed
        ruleset_of[cr.key] = len(rulesets)
    if current:
        rulesets.append(current)

    by_type: dict[str, list[CompiledRule]] = {}
    by_prop: dict[tuple[str, str], list[CompiledRule]] = {}
    goals_type: dict[str, list[CompiledRule]] = {}
    goals_prop: dict[tuple[str, str], list[CompiledRule]] = {}
    for cr in compiled:
        for t in cr.trigger_types:
            by_type.setdefault(t, []).append(cr)
        for p in cr.trigger_props:
            by_prop.setdefault(p, []).append(cr)
        for t in cr.goal_types:
            goals_type.setdefault(t, []).append(cr)
        for p in cr.goal_props:
            goals_prop.setdefault(p, []).append(cr)
    decay = next((p.decay for p in packs if p.decay), None)
    version = stable_hash([(cr.key, cr.rule.version) for cr in compiled], length=12)
    return Program(packs, compiled, builder.slots, rulesets, ruleset_of, by_type, by_prop, goals_type, goals_prop,
                   tracked, fields, list(ever.values()), after, quiet, dated, {cr.key: cr for cr in compiled},
                   decay, version)


def _calendar_span(within: Any) -> float:
    """History to keep for a business-hours wait: 1bh can span a long weekend."""

    if getattr(within, "business_hours", 0):
        return float(within.business_hours) * 86400 / 8 * 7 / 5 + 4 * 86400
    return float(within)
