"""`then:` — every action a rule can take, with `after:` delays (docs/rule-language.md, Actions).

Which action types exist and how each reads its fields is the table of `crmrules.actions` (built-in and
plugins' alike); this module walks the list, locates errors in the file and checks templates' syntax.
"""

from __future__ import annotations

import difflib
from typing import Any, Mapping

from ..actions import ActionType
from . import ast
from .context import ParseContext, join_path, report_unknown_keys
from .values import as_number, read_duration
from .yamlmarks import MarkedDict, MarkedList

class _Field:
    """One action's value as an action type reads it (`crmrules.actions.FieldReader`), errors located in the file."""

    def __init__(self, ctx: ParseContext, item: MarkedDict, kind: str, path: str,
                 templates: dict[tuple[str, str], ast.Template]):
        self.ctx, self.item, self.kind, self.path = ctx, item, kind, path
        self.value: Any = item[kind]
        self._templates = templates
        self._mapping: MarkedDict | None = None

    def error(self, message: str, at: str | None = None, *, use_key: bool = False, path: str | None = None) -> None:
        where = join_path(self.path, path) if path else (join_path(self.path, at) if at else self.path)
        holder = self._mapping if self._mapping is not None else self.value
        if at is not None and isinstance(holder, MarkedDict) and at in holder:
            self.ctx.error(holder, at, where, message, use_key=use_key)
        else:
            self.ctx.error(self.item, self.kind, where, message)

    def mapping(self, required: set[str], permitted: set[str], shorthand: str | None = None) -> dict[str, Any] | None:
        value = self.value
        if shorthand and isinstance(value, str):
            value = MarkedDict({shorthand: value})
            value.mark = self.item.value_marks[self.kind]
            value.key_marks, value.value_marks = {shorthand: value.mark}, {shorthand: value.mark}
        if not isinstance(value, MarkedDict):
            self.error(f"`{self.kind}:` takes fields: {', '.join(sorted(permitted))}")
            return None
        self._mapping = value
        report_unknown_keys(self.ctx, value, permitted, self.path)
        for name in sorted(required - set(value)):
            self.error(f"`{self.kind}` needs `{name}:`")
        return value

    def number(self) -> float | None:
        return as_number(self.value)

    def duration(self, at: str) -> float | None:
        holder = self._mapping if self._mapping is not None else self.value
        found = read_duration(self.ctx, holder, at, join_path(self.path, at))
        return float(found) if found is not None else None

    def template_names(self) -> set[str]:
        return {name for name, _locale in self._templates}

    def check_templates(self) -> None:
        if self._mapping is not None:
            _check_templates(self.ctx, self._mapping, self.path)
        else:
            _check_templates(self.ctx, self.value, self.path, self.item, self.kind)


class Actions:
    """Parses `then:` lists against the table of action types (built-in and plugins', by name)."""

    def __init__(self, ctx: ParseContext, action_types: Mapping[str, ActionType],
                 templates: dict[tuple[str, str], ast.Template]):
        self.ctx = ctx
        self.action_types = action_types
        self.templates = templates

    def parse(self, container: Any, key: Any, path: str) -> list[ast.ActionSpec]:
        items = container[key]
        if isinstance(items, MarkedDict):
            holder = MarkedList([items])
            holder.mark, holder.item_marks = items.mark, [items.mark]
            items = holder
        if not isinstance(items, MarkedList) or not items:
            self.ctx.error(container, key, path, "`then:` needs a list of actions, e.g. `- tag: hot`")
            return []
        out = []
        for i, item in enumerate(items):
            spec = self._one(items, i, join_path(path, i))
            if spec:
                out.append(spec)
        return out

    def _one(self, items: MarkedList, i: int, path: str) -> ast.ActionSpec | None:
        item = items[i]
        if not isinstance(item, MarkedDict):
            self.ctx.error(items, i, path, f"an action is a mapping such as `tag: hot`; got {item!r}")
            return None
        kinds = [k for k in item if k != "after"]
        known = sorted(self.action_types)
        if len(kinds) != 1:
            self.ctx.error(items, i, path, f"each action names exactly one type ({', '.join(known)}); found {kinds or 'none'}")
            return None
        kind = kinds[0]
        sub = join_path(path, kind)
        line = self.ctx.line(item, kind)
        action_type = self.action_types.get(kind)
        if action_type is None:
            close = difflib.get_close_matches(str(kind), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known actions: {', '.join(known)}"
            self.ctx.error(item, kind, sub, f"unknown action {kind!r}{hint}", use_key=True)
            return None
        after = None
        if "after" in item:
            if not action_type.delayable:
                self.ctx.error(item, "after", join_path(path, "after"),
                               f"`{kind}` changes the record at once and cannot be delayed; delay a task, message or webhook instead")
                return None
            after = read_duration(self.ctx, item, "after", join_path(path, "after"))
            if after is None:
                return None
        fields = action_type.read(_Field(self.ctx, item, kind, sub, self.templates))
        if fields is None:
            return None
        return ast.ActionSpec(kind, fields, after, sub, line, action_type)


def _check_templates(ctx: ParseContext, value: Any, path: str, container: Any = None, key: Any = None) -> None:
    """Remember every template in an action's fields; the parser checks them once the pack's fields are known
    (`check` finds unknown filters and misspelt names, not a customer)."""

    if isinstance(value, str):
        if container is not None and ("{{" in value or "{%" in value):
            ctx.templates.append((container, key, path, value))
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_templates(ctx, v, join_path(path, k), value, k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_templates(ctx, v, join_path(path, i), value, i)
