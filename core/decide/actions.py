"""The actions of a fired rule, built from its `then:` items: templates rendered (Jinja2 in its sandbox, see
core/templates.py), validated into `models.Action`s.

Building only reads. Whether an action may be taken (trust, consent, caps, quiet hours) is decided after, by
the evaluator with trust.py and guards.py; applying `score`/`tag`/`set` to the state is the evaluator's too.
Actions that are the same for every lead and trigger (no template, nothing read from the lead) are built once
per rule and shared, so only immutable values may be in them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from pydantic import TypeAdapter

from ..language import ast
from ..models import Action
from ..templates import render, render_value
from .compiler import CompiledRule, Program
from .guards import in_korea
from .trigger import Context, Trigger

if TYPE_CHECKING:
    from _collections_abc import dict_keys  # what typeshed says `dict.keys` returns

_ACTION: TypeAdapter[Action] = TypeAdapter(Action)
_SCALARS = (str, int, float, bool, type(None))

Built = tuple[Action, ...] | str
"""One `then:` item built: its actions, or why it could not be rendered for this lead."""


def display_name(props: dict[str, Any]) -> str:
    """Korean names read family name first and without a space (김유진); others "First Last"."""

    if props.get("name"):
        return str(props["name"])
    first = str(props.get("first_name") or props.get("firstname") or "").strip()
    last = str(props.get("last_name") or props.get("lastname") or "").strip()
    if first and last and all("\uac00" <= ch <= "\ud7a3" for ch in first + last):
        return last + first
    return " ".join(p for p in (first, last) if p)


@dataclass
class _RulePlan:
    """Per compiled rule: which `then:` items are the same always (see `_static`), and those built once."""

    cr: CompiledRule
    static: list[bool]
    built: dict[int, tuple[Action, ...]] = field(default_factory=dict)


class ActionBuilder:
    """Builds the actions of one program's rules; `custom_actions` are plugins' models of their own actions."""

    def __init__(self, program: Program, custom_actions: dict[str, Any] | None = None):
        self.custom_actions = custom_actions or {}
        self._packs = {p.name: p for p in program.packs}
        self._plans: dict[str, _RulePlan] = {}

    def build(self, cr: CompiledRule, ctx: Context, trigger: Trigger) -> list[tuple[ast.ActionSpec, Built]]:
        """Each `then:` item with its actions; a template that fails on this lead's data is a sentence instead."""

        context: _LazyContext | None = None
        pack = self._packs[cr.rule.pack]
        plan = self._plan(cr)
        out: list[tuple[ast.ActionSpec, Built]] = []
        for n, spec in enumerate(cr.rule.then):
            actions = plan.built.get(n)
            if actions is None:
                if context is None:
                    context = _LazyContext(lambda: self.template_context(cr, ctx, trigger))
                try:
                    actions = tuple(self._build(spec, context, pack, ctx))
                except Exception as exc:  # a template that fails on this lead's data: record, do not crash
                    out.append((spec, f"{spec.path}: could not render: {exc}"))
                    continue
                if plan.static[n]:
                    plan.built[n] = actions
            out.append((spec, actions))
        return out

    def _plan(self, cr: CompiledRule) -> _RulePlan:
        plan = self._plans.get(cr.key)
        if plan is None or plan.cr is not cr:
            plan = self._plans[cr.key] = _RulePlan(cr, [_static(spec) for spec in cr.rule.then])
        return plan

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

    def _build(self, spec: ast.ActionSpec, context: dict[str, Any], pack: ast.Pack, ctx: Context) -> list[Action]:
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
            return [self._message(spec, context, pack, ctx, after)]
        if spec.kind == "webhook":
            return [_ACTION.validate_python({"type": "webhook", "url": render(str(f["url"]), context),
                                             "payload": render_value(f.get("payload", {}), context), "after": after})]
        params = render_value(f, context)
        model = self.custom_actions.get(spec.kind)
        if model is not None:
            params = model.model_validate(params).model_dump(mode="json")
        return [_ACTION.validate_python({"type": "custom", "name": spec.kind, "params": params, "after": after})]

    def _message(self, spec: ast.ActionSpec, context: dict[str, Any], pack: ast.Pack, ctx: Context,
                 after: float | None) -> Action:
        f = spec.fields
        lead = ctx.state("lead")
        locale = str(f.get("locale") or (lead.props.get("locale") or lead.props.get("language") if lead else None)
                     or pack.default_locale)
        subject, body = render(str(f.get("subject", "")), context), render(str(f.get("body", "")), context)
        if f.get("template"):
            template = (pack.templates.get((f["template"], locale))
                        or pack.templates.get((f["template"], pack.default_locale)))
            if template is None:
                template = next(t for (name, _), t in sorted(pack.templates.items()) if name == f["template"])
            subject = render(template.subject, context) if template.subject else subject
            body = render(template.body, context)
        advertising = bool(f.get("advertising", False))
        korean = locale.startswith("ko") or in_korea(lead.props if lead else {})
        if advertising and korean and not subject.startswith("(광고)"):
            subject = f"(광고) {subject}".strip()  # Korean Network Act art. 50: ads are labelled
        return _ACTION.validate_python({
            "type": "message", "channel": str(f.get("channel", "email")), "template": f.get("template"),
            "subject": subject, "body": body, "advertising": advertising, "locale": locale, "after": after,
        })


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


class _LazyContext(dict[str, Any]):
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

    def keys(self) -> dict_keys[str, Any]:  # jinja2 copies the context with dict(context)
        self._fill()
        return super().keys()

    def __iter__(self) -> Iterator[str]:
        self._fill()
        return super().__iter__()

    def __len__(self) -> int:
        self._fill()
        return super().__len__()
