"""`crmrules explain LEAD [RULE]`: what happened to one lead, and why each rule did or did not fire."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .decide import slots
from .people import display_name
from .decide.describe import describe_leaf
from .decide.predicates import check_passes
from .decide.trigger import Context, Trigger
from .language import ast
from .pipeline import Pipeline


def _t(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def leaf_report(leaf: Any, ctx: Context, now: float) -> tuple[bool | None, str]:
    """(satisfied now?, what was found) for one condition part; None where only an event can tell."""

    state = ctx.subject
    if isinstance(leaf, ast.EventIs):
        return None, f"needs a {leaf.filter.type} event to arrive"
    if isinstance(leaf, ast.Props):
        parts, ok = [], True
        for check in leaf.checks:
            s = ctx.state(leaf.scope)
            value = (s.view().get(check.name) if s else None)
            passed = check_passes(check, value, now)
            ok = ok and passed
            parts.append(f"{leaf.scope}.{check.name} is {value!r}")
        return ok, ", ".join(parts)
    if isinstance(leaf, ast.Tally):
        value, _ids = slots.tally(state, leaf, now)
        ok = (leaf.at_least is None or value >= leaf.at_least) and (leaf.at_most is None or value <= leaf.at_most)
        need = []
        if leaf.at_least is not None:
            need.append(f"at least {leaf.at_least:g}")
        if leaf.at_most is not None:
            need.append(f"at most {leaf.at_most:g}")
        return ok, f"{value:g} of {' and '.join(need)}"
    if isinstance(leaf, ast.Sequence):
        chain = slots.sequence(state, leaf, now)
        return chain is not None, ("found: " + " → ".join(chain)) if chain else "no such run of events in the window"
    if isinstance(leaf, ast.Absence):
        if leaf.quiet_for is not None:
            ok = slots.absence(state, leaf, Trigger("event", "", now))
            return ok, "quiet long enough" if ok else "an event came too recently"
        return None, "decided when the wait after the anchor event ends"
    return None, ""


def explain(pipeline: Pipeline, entity_id: str, rule_id: str | None = None) -> str:
    store = pipeline.store
    state = pipeline._load(entity_id)
    if state is None:
        return f"no lead {entity_id!r}"
    ctx = pipeline._context(state)
    name = display_name(state.props)
    lines = [f"{state.kind} {state.id}  {name}".rstrip(),
             f"  ids: {', '.join(f'{k}={v}' for k, v in sorted(state.identities.items()))}",
             f"  score {state.score:g}  tags {state.tags}  first seen {_t(state.first_seen)}  last seen {_t(state.last_seen)}",
             "", "events:"]
    for event in store.events_of(entity_id):
        props = {k: v for k, v in event.properties.items()}
        lines.append(f"  {_t(event.ts())}  {event.type:<18} {props if props else ''}")
    decisions = store.decisions_of(entity_id)
    lines += ["", "decisions:"]
    for d in decisions:
        if rule_id and d.rule != rule_id:
            continue
        lines.append(f"  {_t(d.at)}  {d.pack}/{d.rule}: {d.outcome.upper()}" + (f" — {d.reason}" if d.reason else ""))
        for part, value in d.facts.items():
            lines.append(f"      {part}: {value}")
        for action in d.actions:
            data = action.model_dump(exclude_none=True, exclude_defaults=True)
            data.pop("type", None)
            lines.append(f"      → {action.type if action.type != 'custom' else action.name} {data}")
    timers = store.timers_of(entity_id)
    if timers:
        lines += ["", "waiting:"]
        for t in timers:
            lines.append(f"  {_t(t['due_at'])}  {t['rule_key']} ({t['key'].split(':')[0]})")
    now = state.last_seen or 0.0
    fired = {d.rule for d in decisions if d.outcome == "fired"}
    lines += ["", f"rules that did not fire (checked as of {_t(now)}):"]
    any_listed = False
    for pack in pipeline.program.packs:
        for rule in pack.rules:
            if rule.about != state.kind or rule.id in fired or (rule_id and rule.id != rule_id):
                continue
            any_listed = True
            if rule.mode == "disabled":
                lines.append(f"  {pack.name}/{rule.id}: disabled")
                continue
            cr = pipeline.program.by_key[f"{pack.name}/{rule.id}"]
            lines.append(f"  {pack.name}/{rule.id}" + (" (shadow)" if rule.mode == "shadow" else ""))
            blocked = [d for d in decisions if d.rule == rule.id and d.outcome == "blocked"]
            for d in blocked[-3:]:
                lines.append(f"      stopped at {_t(d.at)}: {d.reason}")
            for leaf in cr.leaves:
                ok, found = leaf_report(leaf, ctx, now)
                mark = "✓" if ok else "?" if ok is None else "✗"
                lines.append(f"      {mark} {describe_leaf(leaf)}: {found}")
    if not any_listed:
        lines.append("  (none)")
    return "\n".join(lines)
