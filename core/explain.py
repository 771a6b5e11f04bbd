"""`crmrules explain LEAD [RULE]`: what happened to one lead, and why each rule did or did not fire.

One answer, two views: `explain()` builds it as data (times as epoch seconds), `render()` prints it in the
display zone and `as_json()` writes it for scripts. What it shows:

- the lead, its events, and its score as a ledger: each rule's points and each decay period, with the next decay;
- each decision with its conditions as the rule wrote them (all/any/not and segment names kept), marked with
  what they were when it decided; under a rule that fired or matched, only what held is printed (an `any`'s
  alternatives that were not needed are counted, not shown), so a false condition never reads as a reason;
- each action with when it goes out, and why it waits (quiet hours, the night-time advertising ban), or when a
  message cap lets the next message go;
- the rules that did not fire, their stops and their conditions as of the lead's last event.

Marks: ✓ holds, ✗ does not, ? only an event can tell. Inside `not:` a line reads `not: <condition>` and its mark
is that of the whole line, never of the inner condition alone.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from typing import Any

from .decide import slots
from .decide.calendar import quiet_until
from .decide.describe import describe_leaf
from .decide.guards import KOREA_NIGHT
from .decide.predicates import check_passes
from .decide.trigger import Context, Trigger
from .language import ast
from .language.durations import format_duration
from .models import Decision, OutboxItem
from .people import display_name
from .pipeline import Pipeline
from .times import iso, localise, show

MARK = {True: "✓", False: "✗", None: "?"}


class UnknownRule(ValueError):
    """RULE names no loaded rule; the message says which are close."""


def find_rules(packs: list[ast.Pack], text: str) -> set[str]:
    """`pack/rule` or a bare rule id (every pack's rule of that id) → rule keys; UnknownRule otherwise."""

    keys = {f"{p.name}/{r.id}" for p in packs for r in p.rules}
    if "/" in text:
        if text in keys:
            return {text}
    else:
        found = {k for k in keys if k.split("/", 1)[1] == text}
        if found:
            return found
    ids = sorted({k.split("/", 1)[1] for k in keys})
    close = difflib.get_close_matches(text, sorted(keys) + ids, n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownRule(f"no rule {text!r} in the loaded packs ({', '.join(p.name for p in packs) or 'none'}){hint}")


# ------------------------------------------------------------------ conditions

def _segment_of(path: str) -> str | None:
    found = re.match(r"segments\.([^.\[]+)", path or "")
    return found.group(1) if found else None


def tree(node: ast.Condition, judge: Any, parent_path: str = "") -> dict[str, Any]:
    """The condition as written, each part with `ok` (True, False, None: unknown) from `judge(leaf)`."""

    segment = _segment_of(node.path)
    if segment is not None and segment != _segment_of(parent_path):
        inner = tree(node, judge, node.path)
        return {"node": "segment", "name": segment, "ok": inner["ok"], "items": [inner]}
    if isinstance(node, (ast.AllOf, ast.AnyOf)):
        items = [tree(i, judge, node.path) for i in node.items]
        oks = [i["ok"] for i in items]
        if isinstance(node, ast.AllOf):
            ok = False if False in oks else True if all(o is True for o in oks) else None
        else:
            ok = True if True in oks else False if all(o is False for o in oks) else None
        return {"node": "all" if isinstance(node, ast.AllOf) else "any", "ok": ok, "items": items}
    if isinstance(node, ast.Not):
        inner = tree(node.item, judge, node.path)
        return {"node": "not", "ok": None if inner["ok"] is None else not inner["ok"], "items": [inner]}
    ok, found = judge(node)
    return {"node": "condition", "text": describe_leaf(node), "ok": ok, "found": found}


def render_tree(node: dict[str, Any], lines: list[str], indent: str, matched: bool, negated: bool = False) -> None:
    """Lines of a condition tree. `negated`: inside an odd number of `not:`, so each line says `not …` and is
    marked by whether that holds. `matched`: the rule matched, so only the parts that held are printed."""

    ok = node["ok"] if not negated or node["ok"] is None else not node["ok"]
    kind = node["node"]
    if kind == "not":
        render_tree(node["items"][0], lines, indent, matched, not negated)
        return
    prefix = "not " if negated else ""
    if kind == "condition":
        lines.append(f"{indent}{MARK[ok]} {'not: ' if negated else ''}{node['text']}"
                     + (f": {node['found']}" if node.get("found") else ""))
        return
    if kind == "segment":
        inner = node["items"][0]
        if inner["node"] in ("all", "any"):  # one header: `segment hot, any of:`, not a group inside a group
            lines.append(f"{indent}{MARK[ok]} {prefix}segment {node['name']}, {inner['node']} of:")
            _group_items(inner, lines, indent, matched, negated, ok)
            return
        lines.append(f"{indent}{MARK[ok]} {prefix}segment {node['name']}:")
        render_tree(inner, lines, indent + "    ", matched, negated)
        return
    lines.append(f"{indent}{MARK[ok]} {prefix}{kind} of:")
    _group_items(node, lines, indent, matched, negated, ok)


def _group_items(node: dict[str, Any], lines: list[str], indent: str, matched: bool, negated: bool,
                 ok: bool | None) -> None:
    either = (node["node"] == "any") != negated  # one part holding is enough: any, or `not all`
    items = node["items"]
    shown = items
    if matched and either and ok is True:
        shown = [i for i in items if (i["ok"] if not negated or i["ok"] is None else not i["ok"]) is not False]
    for item in shown:
        render_tree(item, lines, indent + "    ", matched, negated)
    if len(shown) < len(items):
        lines.append(f"{indent}    (+{len(items) - len(shown)} other alternative(s), not needed)")


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
            ok = ok and check_passes(check, value, now)
            parts.append(f"{leaf.scope}.{check.name} is {value!r}")
        return ok, ", ".join(parts)
    if isinstance(leaf, ast.Tally):
        value, _ids = slots.tally(state, leaf, now)
        return _bounds(leaf, value)
    if isinstance(leaf, ast.Sequence):
        chain = slots.sequence(state, leaf, now)
        return chain is not None, ("found: " + " → ".join(chain)) if chain else "no such run of events in the window"
    if isinstance(leaf, ast.Absence):
        if leaf.quiet_for is not None:
            ok = slots.absence(state, leaf, Trigger("event", "", now))
            return ok, "quiet long enough" if ok else "an event came too recently"
        return None, "decided when the wait after the anchor event ends"
    return None, ""


def _bounds(leaf: ast.Tally, value: Any) -> tuple[bool | None, str]:
    if value is None:
        return None, "not known"
    value = float(value)
    ok = (leaf.at_least is None or value >= leaf.at_least) and (leaf.at_most is None or value <= leaf.at_most)
    need = []
    if leaf.at_least is not None:
        need.append(f"at least {leaf.at_least:g}")
    if leaf.at_most is not None:
        need.append(f"at most {leaf.at_most:g}")
    return ok, f"{value:g} of {' and '.join(need)}"


def fact_report(leaf: Any, facts: dict[str, Any], at: float, event: Any) -> tuple[bool | None, str]:
    """What one condition part was when a decision was made, from the facts the decision recorded."""

    text = describe_leaf(leaf)
    if text not in facts:
        return None, "not recorded"
    value = facts[text]
    if isinstance(leaf, ast.Props):
        values = value if isinstance(value, dict) else {}
        ok = all(check_passes(c, values.get(c.name), at) for c in leaf.checks)
        return ok, ", ".join(f"{leaf.scope}.{c.name} was {values.get(c.name)!r}" for c in leaf.checks)
    if isinstance(leaf, ast.EventIs):
        if value != leaf.filter.type:
            return False, f"the event was {value}" if value else "no event (a timer)"
        if not leaf.filter.where:
            return True, f"the event was {value}"
        if event is None:
            return None, f"the event was {value} (its fields are no longer kept)"
        ok = all(check_passes(c, event.properties.get(c.name), at) for c in leaf.filter.where)
        return ok, f"the event was {value} " + ", ".join(f"{c.name}={event.properties.get(c.name)!r}"
                                                        for c in leaf.filter.where)
    if isinstance(leaf, ast.Tally):
        return _bounds(leaf, value)
    if isinstance(leaf, (ast.Sequence, ast.Absence)):
        return (None if value is None else bool(value)), {True: "yes", False: "no", None: "not known"}[
            None if value is None else bool(value)]
    return None, repr(value)


# ------------------------------------------------------------------ score

def score_ledger(decisions: list[Decision], decay: ast.Decay | None, score_now: float,
                 until: float | None) -> dict[str, Any]:
    """Each rule's points and each decay, replayed in decision order as `EntityState.decay` applies them."""

    entries: list[dict[str, Any]] = []
    score, activity, periods = 0.0, None, 0

    def decay_to(t: float) -> None:
        nonlocal score, periods
        if decay is None or activity is None or score <= 0:
            return
        every, idle = float(decay.every), float(decay.idle or 0)
        elapsed = t - activity - idle
        reached = int(elapsed // every) if elapsed >= 0 else 0
        if reached <= periods:
            return
        before = score
        for _ in range(min(reached - periods, 1000)):
            score = max(0.0, score - decay.points) if decay.points is not None else \
                round(score * (1 - (decay.percent or 0) / 100.0), 4)
        entries.append({"at": activity + idle + reached * every, "change": round(score - before, 4),
                        "score": score, "why": f"decay ({reached - periods} period(s) of {_decay_text(decay)})"})
        periods = reached

    for d in decisions:
        if d.outcome != "fired":
            continue
        for action in d.actions:
            if action.type == "score":
                decay_to(d.at)
                score = round(score + action.points, 4)
                activity, periods = d.at, 0
                entries.append({"at": d.at, "change": action.points, "score": score, "why": f"{d.pack}/{d.rule}"})
    if until is not None:
        decay_to(until)
    out: dict[str, Any] = {"score": score_now, "entries": entries, "decay": _decay_text(decay) if decay else None,
                           "next_decay": None}
    if abs(score - score_now) > 1e-6:
        out["unexplained"] = round(score_now - score, 4)  # merges, or history older than the decisions kept
    if decay is not None and activity is not None and score_now > 0:
        every, idle = float(decay.every), float(decay.idle or 0)
        at = activity + idle + (periods + 1) * every
        after = max(0.0, score_now - decay.points) if decay.points is not None else \
            round(score_now * (1 - (decay.percent or 0) / 100.0), 4)
        out["next_decay"] = {"at": at, "change": round(after - score_now, 4)}
    return out


def _decay_text(decay: ast.Decay) -> str:
    amount = f"{decay.points:g} points" if decay.points is not None else f"{decay.percent:g}%"
    every = getattr(decay.every, "text", None) or format_duration(float(decay.every))
    idle = f" after {getattr(decay.idle, 'text', None) or format_duration(float(decay.idle))} idle" if decay.idle else ""
    return f"-{amount} every {every}{idle}"


# ------------------------------------------------------------------ actions and holds

def _action_fields(action: Any) -> dict[str, Any]:
    data = action.model_dump(exclude_none=True, exclude_defaults=True)
    data.pop("type", None)
    return data


def _hold(action: Any, item: OutboxItem, decided_due: float, pack: ast.Pack | None,
          props: dict[str, Any]) -> dict[str, Any] | None:
    """Why an action goes out later than decided (quiet hours, the night-time advertising ban), or None."""

    if item.due_at <= decided_due + 0.5:
        return None
    zone = props.get("timezone") or props.get("time_zone")
    quiet = pack.messages.quiet_hours if pack is not None else None
    if quiet is not None and quiet_until(decided_due, quiet, zone) is not None:
        by = f"quiet hours {quiet.start:%H:%M}–{quiet.end:%H:%M} ({zone or quiet.timezone})"
    elif getattr(action, "advertising", False) and quiet_until(decided_due, KOREA_NIGHT) is not None:
        by = "no advertising at night in Korea (21:00–08:00 Asia/Seoul) without night_ad_opt_in"
    else:
        by = "held"
    return {"by": by, "from": decided_due, "until": item.due_at}


def _cap_frees(d: Decision, pack: ast.Pack | None, messages: list[float]) -> float | None:
    """When a message cap that stopped a message lets the next one go."""

    policy = pack.messages if pack is not None else None
    if policy is None or policy.max_per_person is None or policy.per is None or "message cap" not in d.reason:
        return None
    per = float(policy.per)
    window = sorted(t for t in messages if d.at - per < t <= d.at)
    if len(window) < policy.max_per_person:
        return None
    return window[len(window) - policy.max_per_person] + per


# ------------------------------------------------------------------ the answer

def explain(pipeline: Pipeline, entity_id: str, rule_keys: set[str] | None = None) -> dict[str, Any]:
    """Everything `explain` says of one entity, as data (times are epoch seconds)."""

    store = pipeline.store
    state = pipeline._load(entity_id)
    if state is None:
        raise LookupError(f"no lead {entity_id!r}")
    ctx = pipeline._context(state)
    packs = {p.name: p for p in pipeline.program.packs}
    events = store.events_of(entity_id)
    by_id = {e.id: e for e in events}
    decisions = store.decisions_of(entity_id)
    items: dict[tuple[str, str], tuple[OutboxItem, str]] = {}
    for row in store.outbox_rows(limit=1_000_000):
        if row["entity_id"] != entity_id:
            continue
        item = OutboxItem.model_validate_json(row["body"])
        items.setdefault((item.decision_id, item.action.model_dump_json()), (item, row["status"]))
    last = max([state.last_seen or 0.0] + [d.at for d in decisions])
    answer: dict[str, Any] = {
        "entity": {"id": state.id, "kind": state.kind, "name": display_name(state.props),
                   "ids": dict(sorted(state.identities.items())), "claims": dict(sorted(state.claims.items())),
                   "score": state.score, "tags": list(state.tags), "first_seen": state.first_seen,
                   "last_seen": state.last_seen},
        "events": [{"at": e.ts(), "type": e.type, "source": e.source, "id": e.id, "props": e.properties}
                   for e in events],
        "score": score_ledger(decisions, pipeline.program.decay, state.score, last),
        "decisions": [], "waiting": [], "not_fired": [], "checked_at": state.last_seen or 0.0,
    }
    by_key = pipeline.program.by_key
    for d in decisions:
        key = f"{d.pack}/{d.rule}"
        if rule_keys and key not in rule_keys:
            continue
        pack = packs.get(d.pack)
        entry: dict[str, Any] = {"at": d.at, "rule": key, "outcome": d.outcome, "reason": d.reason,
                                 "conditions": None, "actions": []}
        cr = by_key.get(key)
        if cr is not None and d.facts:
            event = by_id.get(d.trigger)
            entry["conditions"] = tree(cr.rule.when, lambda leaf, d=d, e=event: fact_report(leaf, d.facts, d.at, e))
        frees = _cap_frees(d, pack, state.messages)
        if frees is not None:
            entry["cap_frees"] = frees
        for action in d.actions:
            found = items.get((d.id, action.model_dump_json()))
            name = action.name if action.type == "custom" else action.type
            one: dict[str, Any] = {"type": name, "fields": _action_fields(action), "status": None, "due_at": None,
                                   "hold": None}
            if found is not None:
                item, status = found
                one["status"], one["due_at"] = status, item.due_at
                one["hold"] = _hold(action, item, d.at + float(action.after or 0), pack, state.props)
            entry["actions"].append(one)
        answer["decisions"].append(entry)
    for t in store.timers_of(entity_id):
        if rule_keys and t["rule_key"] not in rule_keys:
            continue
        answer["waiting"].append({"due_at": t["due_at"], "rule": t["rule_key"], "kind": t["key"].split(":")[0]})
    now = state.last_seen or 0.0
    fired = {f"{d.pack}/{d.rule}" for d in decisions if d.outcome == "fired"}
    for pack in pipeline.program.packs:
        for rule in pack.rules:
            key = f"{pack.name}/{rule.id}"
            if rule.about != state.kind or key in fired or (rule_keys and key not in rule_keys):
                continue
            entry = {"rule": key, "mode": rule.mode, "stopped": [], "conditions": None}
            if rule.mode != "disabled":
                entry["stopped"] = [{"at": d.at, "reason": d.reason} for d in decisions
                                    if f"{d.pack}/{d.rule}" == key and d.outcome == "blocked"][-3:]
                entry["conditions"] = tree(rule.when, lambda leaf: leaf_report(leaf, ctx, now))
            answer["not_fired"].append(entry)
    return answer


TIME_KEYS = {"at", "due_at", "first_seen", "last_seen", "checked_at", "from", "until", "cap_frees"}


def as_json(answer: dict[str, Any], zone: dt.tzinfo) -> str:
    """The answer for scripts: times as ISO 8601 in the display zone."""

    def convert(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: convert(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        if key in TIME_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
            return iso(value, zone)
        return value

    return json.dumps(dict(convert(answer), zone=str(zone)), ensure_ascii=False, indent=2, default=str)


def render(answer: dict[str, Any], zone: dt.tzinfo) -> str:
    """The answer as an admin reads it; every time in the display zone, with the zone."""

    e = answer["entity"]
    t = lambda ts: show(ts, zone)  # noqa: E731
    lines = [f"{e['kind']} {e['id']}  {e['name']}".rstrip(),
             f"  ids: {', '.join(f'{k}={v}' for k, v in e['ids'].items())}"]
    if e["claims"]:
        lines.append(f"  claims (not ids): {', '.join(f'{k}={v}' for k, v in e['claims'].items())}")
    lines += [f"  score {e['score']:g}  tags {e['tags']}  first seen {t(e['first_seen'])}  last seen {t(e['last_seen'])}",
              f"  times in {zone}", "", "events:"]
    for ev in answer["events"]:
        lines.append(f"  {t(ev['at'])}  {ev['type']:<18} {ev['props'] if ev['props'] else ''}".rstrip())
    ledger = answer["score"]
    if ledger["entries"] or ledger["score"]:
        lines += ["", "score:" + (f" (decay {ledger['decay']})" if ledger["decay"] else "")]
        for entry in ledger["entries"]:
            lines.append(f"  {t(entry['at'])}  {entry['change']:+g} → {entry['score']:g}  {entry['why']}")
        if ledger.get("unexplained"):
            lines.append(f"  {ledger['unexplained']:+g} from merged records or older history")
        lines.append(f"  now {ledger['score']:g}")
        if ledger["next_decay"]:
            nd = ledger["next_decay"]
            lines.append(f"  next decay {nd['change']:+g} at {t(nd['at'])}, unless a rule scores before")
    lines += ["", "decisions:"]
    for d in answer["decisions"]:
        reason = localise(d["reason"], zone)
        lines.append(f"  {t(d['at'])}  {d['rule']}: {d['outcome'].upper()}" + (f" — {reason}" if reason else ""))
        if d.get("cap_frees"):
            lines.append(f"      message cap: the next message may go from {t(d['cap_frees'])}")
        if d["conditions"] is not None:
            render_tree(d["conditions"], lines, "      ", matched=True)
        for a in d["actions"]:
            text = f"      → {a['type']} {a['fields']}"
            if a["hold"]:
                h = a["hold"]
                text += f"  held by {h['by']}: goes out {t(h['until'])} (decided for {t(h['from'])})"
            elif a["due_at"] is not None and a["due_at"] > d["at"] + 0.5:
                text += f"  goes out {t(a['due_at'])}"
            if a["status"]:
                text += f"  [{a['status']}]"
            lines.append(text)
    if answer["waiting"]:
        lines += ["", "waiting:"]
        for w in answer["waiting"]:
            lines.append(f"  {t(w['due_at'])}  {w['rule']} ({w['kind']})")
    lines += ["", f"rules that did not fire (checked as of {t(answer['checked_at'])}):"]
    for r in answer["not_fired"]:
        if r["mode"] == "disabled":
            lines.append(f"  {r['rule']}: disabled")
            continue
        lines.append(f"  {r['rule']}" + (" (shadow)" if r["mode"] == "shadow" else ""))
        for stop in r["stopped"]:
            lines.append(f"      stopped at {t(stop['at'])}: {localise(stop['reason'], zone)}")
        if r["conditions"] is not None:
            render_tree(r["conditions"], lines, "      ", matched=False)
    if not answer["not_fired"]:
        lines.append("  (none)")
    return "\n".join(lines)
