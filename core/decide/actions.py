"""After a rule matched: guards, rendered actions, and the decision that records why.

Guards run after matching because they need history and time: limits, cooldowns, groups (one winner per
trigger), shadow mode, and for messages consent, the per-person cap and quiet hours. Every stop is recorded
as a `blocked` decision with its reason, so `crmrules explain` can answer "why didn't this lead get it?".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import TypeAdapter, ValidationError

from .calendar import quiet_until
from .compiler import CompiledRule
from .describe import describe_leaf
from .evaluator import Context, Outcome, Trigger
from ..language import ast
from ..language.durations import format_duration
from ..models import (Action, BEHAVIOUR_ACTIONS, Decision, ENTITY_KINDS, OutboxItem, STATE_ACTIONS,
                     UNTRUSTED_SOURCES, construct_validated, stable_hash)
from ..templates import render, render_value

_ACTION = TypeAdapter(Action)
MESSAGE_CHANNELS_NEEDING_CONSENT = {"email", "sms", "kakao", "push"}
KOREA_NIGHT = ast.QuietHours(dt.time(21, 0), dt.time(8, 0), "Asia/Seoul")


_SCALARS = (str, int, float, bool, type(None))


def _template_free(value: Any) -> bool:
    return not isinstance(value, str) or ("{{" not in value and "{%" not in value)


def _static(spec: ast.ActionSpec) -> bool:
    """Whether `_build` gives this spec the same actions for every lead and trigger: no template in it, and
    nothing read from the lead (messages read its locale and country; custom actions go through a plugin's
    model). Such actions are built once per rule and shared: only immutable values may be in them."""

    f = spec.fields
    if spec.kind == "score":
        return True
    if spec.kind in ("tag", "untag"):
        return all(isinstance(t, str) and _template_free(t) for t in f["tags"])
    if spec.kind == "task":
        return all(_template_free(str(f[k])) for k in ("title", "body", "owner") if k in f and f[k] is not None)
    if spec.kind == "set":
        props = f["properties"]
        return isinstance(props, dict) and all(isinstance(v, _SCALARS) and _template_free(v) for v in props.values())
    return False


@dataclass
class _RulePlan:
    """What the decider works out once per compiled rule instead of once per firing."""

    cr: CompiledRule
    leaves: list[tuple[str, Any]]  # each condition part in words, with the part
    static: list[bool]  # per `then:` item: built once (see `_static`)
    built: dict[int, tuple[Any, ...]] = field(default_factory=dict)  # per `then:` item, once built
    plain: bool = False  # rule id, pack, version and key are plain strings: records need no validation
    key_part: str = ""  # cr.key as `stable_hash` spells it


def _sha(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


@dataclass
class Result:
    outcome: Outcome
    changed: set[str] = field(default_factory=set)


def truthy(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "y", "1", "on", "opted_in", "subscribed"):
        return True
    if text in ("false", "no", "n", "0", "off", "opted_out", "unsubscribed"):
        return False
    return None


def display_name(props: dict[str, Any]) -> str:
    """Korean names read family name first and without a space (김유진); others "First Last"."""

    if props.get("name"):
        return str(props["name"])
    first = str(props.get("first_name") or props.get("firstname") or "").strip()
    last = str(props.get("last_name") or props.get("lastname") or "").strip()
    if first and last and all("\uac00" <= ch <= "\ud7a3" for ch in first + last):
        return last + first
    return " ".join(p for p in (first, last) if p)


class Decider:
    """Turns a match into a decision; `push_enabled=False` records actions without queueing pushes."""

    def __init__(self, program: Any, custom_actions: dict[str, Any] | None = None,
                 untrusted_sources: frozenset[str] = UNTRUSTED_SOURCES):
        self.program = program
        self.custom_actions = custom_actions or {}
        self.untrusted_sources = untrusted_sources
        self._packs = {p.name: p for p in program.packs}
        self._plans: dict[str, _RulePlan] = {}

    def _plan(self, cr: CompiledRule) -> _RulePlan:
        plan = self._plans.get(cr.key)
        if plan is None or plan.cr is not cr:
            rule = cr.rule
            plan = _RulePlan(cr, [(describe_leaf(leaf), leaf) for leaf in cr.leaves],
                             [_static(spec) for spec in rule.then])
            plan.plain = all(type(v) is str for v in (rule.id, rule.pack, rule.version, cr.key))
            plan.key_part = f"str:{cr.key}"
            self._plans[cr.key] = plan
        return plan

    # ------------------------------------------------------------------ the verdict

    def decide(self, cr: CompiledRule, ctx: Context, trigger: Trigger, snapshot: dict[str, Any],
               groups_won: dict[str, str]) -> Result:
        rule = cr.rule
        state = ctx.subject
        facts = self.facts(cr, ctx, trigger, snapshot)
        counter, per_value = self.limit_key(cr, ctx, trigger)
        blocked = self._guard(cr, state, trigger.ts, groups_won, counter, per_value)
        if blocked:
            return Result(Outcome(decisions=[self._decision(cr, ctx, trigger, "blocked", blocked, facts, [])]))
        if rule.group:
            groups_won[rule.group] = rule.id
        actions, notes = self._actions(cr, ctx, trigger)
        shadow = rule.mode == "shadow"
        if not actions and notes:
            return Result(Outcome(decisions=[self._decision(cr, ctx, trigger, "blocked", "; ".join(notes), facts, [])]))
        outcome = "shadow" if shadow else "fired"
        decision = self._decision(cr, ctx, trigger, outcome, "; ".join(notes), facts, [a for a, _ in actions])
        result = Result(Outcome(decisions=[decision], changed=not shadow))
        if shadow:
            return result
        state.note_fired(counter, trigger.ts, float(rule.limit.per) if rule.limit.per else None)
        plan = self._plan(cr)
        ts = trigger.ts
        plain = (plan.plain and type(state.id) is str and type(trigger.id) is str and state.kind in ENTITY_KINDS
                 and type(ts) in (float, int))
        prefix = f"{plan.key_part}\x1fstr:{state.id}\x1fstr:{trigger.id}\x1fint:" if plain else ""
        for i, (action, due) in enumerate(actions):
            if action.type in STATE_ACTIONS:
                result.changed |= self._apply(state, action, trigger.ts)
            if action.type == "message":
                state.messages.append(trigger.ts)
            identities = dict(state.identities)
            if plain and type(due) in (float, int) and all(type(k) is str and type(v) is str
                                                           for k, v in identities.items()):
                # the same fields, values and types `OutboxItem(...)` would give, without validating again
                item = construct_validated(OutboxItem, {
                    "idempotency_key": _sha(f"{prefix}{i}", 32), "decision_id": decision.id, "rule": cr.key,
                    "entity_id": state.id, "entity_kind": state.kind, "identities": identities, "action": action,
                    "due_at": float(due), "decided_at": float(ts), "record": {}, "shadow": False,
                })
            else:
                item = OutboxItem(
                    idempotency_key=stable_hash(cr.key, state.id, trigger.id, i, length=32),
                    decision_id=decision.id, rule=cr.key, entity_id=state.id, entity_kind=state.kind,  # type: ignore[arg-type]
                    identities=identities, action=action, due_at=due, decided_at=trigger.ts,
                )
            result.outcome.outbox.append(item)
        after = {"tags": list(state.tags), "score": state.score}
        for item in result.outcome.outbox:
            item.record = after
        return result

    def limit_key(self, cr: CompiledRule, ctx: Context, trigger: Trigger) -> tuple[str, Any]:
        """What the rule's limit and cooldown count under: the rule, or with `per:` the rule and that value
        (taken from the event being evaluated, which for a timer is the event that set it)."""

        per = cr.rule.per
        if per is None:
            return cr.key, None
        if per.scope == "event":
            value = trigger.props.get(per.name)
        else:
            record = ctx.state(per.scope)
            value = record.view().get(per.name) if record is not None else None
        if value is None or value == "":
            value = None  # events without the property share one count, so that they cannot repeat freely
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
        return f"{cr.key}#{per.text}={text}", value

    def _guard(self, cr: CompiledRule, state: Any, now: float, groups_won: dict[str, str],
               counter: str | None = None, per_value: Any = None) -> str | None:
        rule = cr.rule
        if rule.group and rule.group in groups_won:
            return f"group {rule.group!r}: rule {groups_won[rule.group]!r} took this trigger (higher priority)"
        counter = counter or cr.key
        of = f" for {rule.per.text} {per_value!r}" if rule.per is not None else ""
        limit = rule.limit
        if limit.times is not None:
            since = now - float(limit.per) if limit.per else None
            times = state.fired_within(counter, since)
            if len(times) >= limit.times:
                last = dt.datetime.fromtimestamp(max(times), dt.timezone.utc).isoformat()
                return f"limit {limit.text!r}{of} reached (last fired {last})"
        if rule.cooldown is not None:
            recent = state.fired_within(counter, now - float(rule.cooldown))
            if recent:
                return f"cooldown {rule.cooldown.text}{of} since {dt.datetime.fromtimestamp(max(recent), dt.timezone.utc).isoformat()}"
        return None

    # ------------------------------------------------------------------ actions

    def template_context(self, cr: CompiledRule, ctx: Context, trigger: Trigger) -> dict[str, Any]:
        def record(kind: str) -> dict[str, Any]:
            s = ctx.state(kind)
            if s is None:
                return {}
            out = dict(s.props)
            out.update(id=s.id, tags=list(s.tags), score=s.score)
            out.setdefault("name", display_name(s.props))
            return out

        pack = self._packs[cr.rule.pack]
        anchor = trigger.anchor if trigger.etype is not None else None  # a timer's own rule: the event that set it
        at = float(anchor.get("at") or trigger.ts) if anchor else trigger.ts
        return {
            "lead": record("lead"), "account": record("account"), "deal": record("deal"),
            "event": dict(trigger.props, type=trigger.etype,
                          occurred_at=dt.datetime.fromtimestamp(at, dt.timezone.utc).isoformat()),
            "rule": {"id": cr.rule.id, "description": cr.rule.description},
            "vars": dict(pack.variables),
        }

    def _actions(self, cr: CompiledRule, ctx: Context, trigger: Trigger) -> tuple[list[tuple[Any, float]], list[str]]:
        context: _LazyContext | None = None
        pack = self._packs[cr.rule.pack]
        plan = self._plan(cr)
        out: list[tuple[Any, float]] = []
        notes: list[str] = []
        for n, spec in enumerate(cr.rule.then):
            actions = plan.built.get(n)
            if actions is None:
                if context is None:
                    context = _LazyContext(lambda: self.template_context(cr, ctx, trigger))
                try:
                    actions = tuple(self._build(spec, context, pack, ctx))
                except Exception as exc:  # a template that fails on this lead's data: record, do not crash
                    notes.append(f"{spec.path}: could not render: {exc}")
                    continue
                if plan.static[n]:
                    plan.built[n] = actions
            for action in actions:
                if not self._allowed(action, ctx.subject, trigger):
                    why = ("this came from the tracker by an id no trusted source vouched for" if ctx.subject.trusted
                           else "only tracker events are known for this lead")
                    notes.append(f"{spec.path}: {action.type} not done: {why}, and such events may only tag, "
                                 "score or show on-site messages")
                    continue
                due = trigger.ts + float(spec.after or 0)
                if action.type == "message":
                    due, why = self._message_guards(action, ctx.subject, pack, due)
                    if why:
                        notes.append(why)
                        continue
                out.append((action, due))
        return out, notes

    def _build(self, spec: ast.ActionSpec, context: dict[str, Any], pack: ast.Pack, ctx: Context) -> list[Any]:
        f = spec.fields
        after = float(spec.after) if spec.after else None
        if spec.kind == "score":
            return [_ACTION.validate_python({"type": "score", "points": f["points"]})]
        if spec.kind in ("tag", "untag"):
            return [_ACTION.validate_python({"type": spec.kind, "tag": render(t, context)}) for t in f["tags"]]
        if spec.kind == "set":
            return [_ACTION.validate_python({"type": "set", "properties": render_value(f["properties"], context)})]
        if spec.kind == "task":
            return [_ACTION.validate_python({
                "type": "task", "title": render(str(f["title"]), context), "body": render(str(f.get("body", "")), context),
                "due_in": f.get("due"), "owner": render(str(f["owner"]), context) if f.get("owner") else None,
                "priority": f.get("priority", "medium"), "after": after,
            })]
        if spec.kind == "message":
            lead = ctx.state("lead")
            locale = str(f.get("locale") or (lead.props.get("locale") or lead.props.get("language") if lead else None)
                         or pack.default_locale)
            subject, body = render(str(f.get("subject", "")), context), render(str(f.get("body", "")), context)
            if f.get("template"):
                template = pack.templates.get((f["template"], locale)) or pack.templates.get((f["template"], pack.default_locale))
                if template is None:
                    template = next(t for (name, _), t in sorted(pack.templates.items()) if name == f["template"])
                subject = render(template.subject, context) if template.subject else subject
                body = render(template.body, context)
            advertising = bool(f.get("advertising", False))
            korean = locale.startswith("ko") or _in_korea(lead.props if lead else {})
            if advertising and korean and not subject.startswith("(광고)"):
                subject = f"(광고) {subject}".strip()  # Korean Network Act art. 50: ads are labelled
            return [_ACTION.validate_python({
                "type": "message", "channel": str(f.get("channel", "email")), "template": f.get("template"),
                "subject": subject, "body": body, "advertising": advertising, "locale": locale, "after": after,
            })]
        if spec.kind == "webhook":
            return [_ACTION.validate_python({"type": "webhook", "url": render(str(f["url"]), context),
                                             "payload": render_value(f.get("payload", {}), context), "after": after})]
        params = render_value(f, context)
        model = self.custom_actions.get(spec.kind)
        if model is not None:
            params = model.model_validate(params).model_dump(mode="json")
        return [_ACTION.validate_python({"type": "custom", "name": spec.kind, "params": params, "after": after})]

    def _allowed(self, action: Any, state: Any, trigger: Trigger) -> bool:
        """Tracker write keys are public: a lead known only from them cannot make us write to a CRM, and
        neither can an untrusted event that reached a trusted lead through an id no trusted source vouched for
        (nor a wait such an event started)."""

        anchor = trigger.anchor or {}
        if trigger.kind == "event" and trigger.trusted is not None:
            trusted = trigger.trusted
        elif trigger.kind == "timer" and anchor.get("trusted") is not None:
            trusted = bool(anchor["trusted"]) and state.trusted
        else:
            trusted = state.trusted or (trigger.kind == "event" and trigger.source not in self.untrusted_sources)
        if trusted:
            return True
        if action.type in BEHAVIOUR_ACTIONS:
            return True
        return action.type == "message" and action.channel == "onsite"

    def _message_guards(self, action: Any, state: Any, pack: ast.Pack, due: float) -> tuple[float, str | None]:
        props = state.props
        if action.channel in MESSAGE_CHANNELS_NEEDING_CONSENT:
            if truthy(props.get("unsubscribed")) or truthy(props.get(f"{action.channel}_unsubscribed")):
                return due, f"consent: lead unsubscribed, {action.channel} message not sent"
            opt_in = truthy(props.get(f"{action.channel}_opt_in"))
            if opt_in is False:
                return due, f"consent: {action.channel}_opt_in is false, message not sent"
            if action.advertising and opt_in is None:
                return due, f"consent: {action.channel}_opt_in unknown, advertising message not sent"
        policy = pack.messages
        if policy.max_per_person is not None:
            since = due - float(policy.per)
            sent = [t for t in state.messages if t > since]
            if len(sent) >= policy.max_per_person:
                return due, f"message cap {policy.max_per_person} per {getattr(policy.per, 'text', None) or format_duration(float(policy.per))} reached"
        timezone = props.get("timezone") or props.get("time_zone")
        if policy.quiet_hours is not None:
            until = quiet_until(due, policy.quiet_hours, timezone)
            if until is not None:
                due = until
        korean = (action.locale or "").startswith("ko") or _in_korea(props)
        if action.advertising and korean and not truthy(props.get("night_ad_opt_in")):
            until = quiet_until(due, KOREA_NIGHT)
            if until is not None:
                due = until
        return due, None

    def _apply(self, state: Any, action: Any, now: float) -> set[str]:
        if action.type == "score":
            state.add_score(action.points, now)
            return {"score"}
        if action.type == "tag":
            if action.tag not in state.tags:
                state.tags.append(action.tag)
                return {"tags"}
            return set()
        if action.type == "untag":
            if action.tag in state.tags:
                state.tags.remove(action.tag)
                return {"tags"}
            return set()
        changed = set()
        for name, value in action.properties.items():
            if state.props.get(name) != value:
                state.props[name] = value
                state.prop_ts[name] = now
                changed.add(name)
        return changed

    # ------------------------------------------------------------------ records

    def facts(self, cr: CompiledRule, ctx: Context, trigger: Trigger, snapshot: dict[str, Any]) -> dict[str, Any]:
        """Each condition part with the value that satisfied it, in words."""

        out: dict[str, Any] = {}
        self._leaf_slots = cr.leaf_slots
        for text, leaf in self._plan(cr).leaves:
            out[text] = self._leaf_value(leaf, ctx, trigger, snapshot)
        return out

    def _leaf_value(self, leaf: Any, ctx: Context, trigger: Trigger, snapshot: dict[str, Any]) -> Any:
        if isinstance(leaf, ast.Props):
            s = ctx.state(leaf.scope)
            view = s.view() if s else {}
            return {c.name: view.get(c.name) for c in leaf.checks}
        if isinstance(leaf, ast.EventIs):
            return trigger.etype
        slot = self._leaf_slots.get(id(leaf))
        return snapshot.get(slot) if slot else None

    def _decision(self, cr: CompiledRule, ctx: Context, trigger: Trigger, outcome: str, reason: str,
                  facts: dict[str, Any], actions: list[Any], kind: str = "decision") -> Decision:
        event_ids = [trigger.id] if trigger.kind == "event" else [str(trigger.payload.get("anchor_id", ""))] if trigger.payload.get("anchor_id") else []
        plan = self._plan(cr)
        subject, rule = ctx.subject, cr.rule
        if (plan.plain and type(subject.id) is str and type(trigger.id) is str and subject.kind in ENTITY_KINDS
                and type(trigger.ts) in (float, int)):
            # the same fields, values and types `Decision(...)` below would give, without validating again:
            # `actions` were validated when they were built, `facts` is a fresh dict with str keys
            return construct_validated(Decision, {
                "id": _sha(f"str:{kind}\x1f{plan.key_part}\x1fstr:{subject.id}\x1fstr:{trigger.id}", 24),
                "rule": rule.id, "pack": rule.pack, "rule_version": rule.version, "entity_id": subject.id,
                "entity_kind": subject.kind, "trigger": trigger.id, "event_ids": event_ids, "at": float(trigger.ts),
                "outcome": outcome, "reason": reason, "facts": _jsonable(facts), "actions": list(actions),
            })
        return Decision(
            id=stable_hash(kind, cr.key, ctx.subject.id, trigger.id, length=24), rule=cr.rule.id,
            pack=cr.rule.pack, rule_version=cr.rule.version, entity_id=ctx.subject.id,
            entity_kind=ctx.subject.kind, trigger=trigger.id, event_ids=event_ids, at=trigger.ts,  # type: ignore[arg-type]
            outcome=outcome, reason=reason, facts=_jsonable(facts), actions=actions,  # type: ignore[arg-type]
        )

    def goal_decision(self, cr: CompiledRule, ctx: Context, trigger: Trigger) -> Decision:
        return self._decision(cr, ctx, trigger, "blocked", "goal reached: pending reminders and delayed actions cancelled",
                              {}, [], kind="goal")


def _in_korea(props: dict[str, Any]) -> bool:
    return str(props.get("country", "")).strip().upper() in ("KR", "KOR", "KOREA", "SOUTH KOREA", "대한민국", "한국")


class _LazyContext(dict):
    """The template context, built only when a template actually reads it (most actions have none)."""

    def __init__(self, build: Callable[[], dict[str, Any]]):
        super().__init__()
        self._build = build
        self._ready = False

    def _fill(self) -> None:
        if not self._ready:
            self._ready = True
            self.update(self._build())

    def __getitem__(self, key: str) -> Any:
        self._fill()
        return super().__getitem__(key)

    def keys(self):  # jinja2 copies the context with dict(context)
        self._fill()
        return super().keys()

    def __iter__(self):
        self._fill()
        return super().__iter__()

    def __len__(self) -> int:
        self._fill()
        return super().__len__()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
