"""The actions of a fired rule, built from its `then:` items by each item's action type (`crmrules.actions`):
templates rendered (Jinja2 in its sandbox, see core/templates.py), validated into `models.Action`s.

Building only reads. Whether an action may be taken (trust, consent, caps, quiet hours) is decided after, by
the evaluator with trust.py and guards.py; applying `score`/`tag`/`set` to the state is the evaluator's too.
Items whose type says they are `static` (no template, nothing read from the lead) are built once per rule and
shared, so only immutable values may be in them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..language import ast
from ..models import Action
from ..people import display_name
from ..templates import render, render_value
from .compiler import CompiledRule, Program
from .trigger import Context, Trigger

if TYPE_CHECKING:
    from _collections_abc import dict_keys  # what typeshed says `dict.keys` returns

Built = tuple[Action, ...] | str
"""One `then:` item built: its actions, or why it could not be rendered for this lead."""


@dataclass
class _RulePlan:
    """Per compiled rule: which `then:` items are the same always (their type's `static`), and those built once."""

    cr: CompiledRule
    static: list[bool]
    built: dict[int, tuple[Action, ...]] = field(default_factory=dict)


class _Env:
    """`crmrules.actions.BuildEnv` for one `then:` item of one firing."""

    def __init__(self, context: dict[str, Any], pack: ast.Pack, ctx: Context, after: float | None):
        self.after = after
        self.default_locale = pack.default_locale
        self._context, self._pack, self._ctx = context, pack, ctx

    def render(self, text: str, required: str | None = None) -> str:
        return render(text, self._context, required)

    def render_value(self, value: Any) -> Any:
        return render_value(value, self._context)

    def lead(self) -> dict[str, Any] | None:
        lead = self._ctx.state("lead")
        return lead.props if lead is not None else None

    def template(self, name: str, locale: str) -> ast.Template:
        templates = self._pack.templates
        found = templates.get((name, locale)) or templates.get((name, self._pack.default_locale))
        if found is None:  # the loader made sure the pack has it in some locale
            found = next(t for (n, _), t in sorted(templates.items()) if n == name)
        return found


class ActionBuilder:
    """Builds the actions of one program's rules, each `then:` item by its own action type."""

    def __init__(self, program: Program):
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
                    env = _Env(context, pack, ctx, float(spec.after) if spec.after else None)
                    actions = tuple(spec.action.build(spec.fields, env))
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
            plan = self._plans[cr.key] = _RulePlan(cr, [spec.action.static(spec.fields) for spec in cr.rule.then])
        return plan
    def template_context(self, cr: CompiledRule, ctx: Context, trigger: Trigger) -> dict[str, Any]:
        def record(kind: str) -> dict[str, Any]:
            s = ctx.state(kind)
            if s is None:
                return {}
            out = dict(s.props)
            if not out.get("email") and s.identities.get("email"):
                out["email"] = s.identities["email"]  # an email known only as the record's id (never a claim)
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
