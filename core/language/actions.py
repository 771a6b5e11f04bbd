"""`then:` — every action a rule can take, built in or a plugin's, with `after:` delays and the template checks of
their text fields (docs/rule-language.md, Actions). All action parsing lives here, so the set of action types
is decided in one place.
"""

from __future__ import annotations

import difflib
from typing import Any

from . import ast
from .context import ParseContext, join_path, report_unknown_keys
from .values import as_number, read_duration
from .yamlmarks import MarkedDict, MarkedList

BUILTIN_ACTIONS = {"score", "tag", "untag", "set", "task", "message", "webhook"}
DELAYABLE = {"task", "message", "webhook"}


class Actions:
    """Parses `then:` lists; `action_types` are the plugins' types by name, each with its pydantic model or None."""

    def __init__(self, ctx: ParseContext, action_types: dict[str, Any],
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
        known = BUILTIN_ACTIONS | set(self.action_types)
        if len(kinds) != 1:
            self.ctx.error(items, i, path, f"each action names exactly one type ({', '.join(sorted(known))}); found {kinds or 'none'}")
            return None
        kind = kinds[0]
        sub = join_path(path, kind)
        line = self.ctx.line(item, kind)
        if kind not in known:
            close = difflib.get_close_matches(str(kind), sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known actions: {', '.join(sorted(known))}"
            self.ctx.error(item, kind, sub, f"unknown action {kind!r}{hint}", use_key=True)
            return None
        after = None
        if "after" in item:
            if kind not in DELAYABLE and kind not in self.action_types:
                self.ctx.error(item, "after", join_path(path, "after"),
                               f"`{kind}` changes the record at once and cannot be delayed; delay a task, message or webhook instead")
                return None
            after = read_duration(self.ctx, item, "after", join_path(path, "after"))
            if after is None:
                return None
        fields = self._fields(kind, item, sub)
        if fields is None:
            return None
        return ast.ActionSpec(kind, fields, after, sub, line)

    def _fields(self, kind: str, item: MarkedDict, path: str) -> dict[str, Any] | None:
        value = item[kind]
        if kind == "score":
            points = as_number(value)
            if points is None:
                self.ctx.error(item, kind, path, f"{value!r} is not a number of points; write +30 or -10")
                return None
            return {"points": points}
        if kind in ("tag", "untag"):
            tags = value if isinstance(value, list) else [value]
            if not all(isinstance(t, str) and t.strip() for t in tags):
                self.ctx.error(item, kind, path, f"`{kind}:` takes a tag name or a list of them")
                return None
            return {"tags": [t.strip() for t in tags]}
        if kind == "set":
            if not isinstance(value, MarkedDict) or not value:
                self.ctx.error(item, kind, path, "`set:` takes properties and values, e.g. `set: {lifecycle: sql}`")
                return None
            return {"properties": dict(value)}
        allowed = {
            "task": ({"title"}, {"title", "body", "due", "owner", "priority"}),
            "message": (set(), {"channel", "template", "subject", "body", "advertising", "locale"}),
            "webhook": ({"url"}, {"url", "payload"}),
        }
        if kind in allowed:
            if kind == "task" and isinstance(value, str):
                value = MarkedDict(title=value)
                value.mark = item.value_marks[kind]
                value.key_marks, value.value_marks = {"title": value.mark}, {"title": value.mark}
            if not isinstance(value, MarkedDict):
                self.ctx.error(item, kind, path, f"`{kind}:` takes fields: {', '.join(sorted(allowed[kind][1]))}")
                return None
            required, permitted = allowed[kind]
            report_unknown_keys(self.ctx, value, permitted, path)
            for field_name in sorted(required - set(value)):
                self.ctx.error(item, kind, path, f"`{kind}` needs `{field_name}:`")
            fields = dict(value)
            if kind == "task":
                if "due" in value:
                    due = read_duration(self.ctx, value, "due", join_path(path, "due"))
                    fields["due"] = float(due) if due is not None else None
                if fields.get("priority", "medium") not in ("low", "medium", "high"):
                    self.ctx.error(value, "priority", join_path(path, "priority"), "priority is low, medium or high")
            if kind == "message":
                if "template" not in value and "body" not in value:
                    self.ctx.error(item, kind, path, "a message needs `template:` (a file in the pack's templates/) or `body:`")
                    return None
                name = value.get("template")
                if name and not any(t[0] == name for t in self.templates):
                    close = difflib.get_close_matches(str(name), sorted({t[0] for t in self.templates}), n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else "; add templates/<name>.<locale>.txt to the pack"
                    self.ctx.error(value, "template", join_path(path, "template"), f"no template {name!r}{hint}")
                if "advertising" in value and not isinstance(value["advertising"], bool):
                    self.ctx.error(value, "advertising", join_path(path, "advertising"), "write `advertising: true` or `false`")
            _check_templates(self.ctx, value, path)
            return fields
        # A plugin's action type: it validates its own fields with its pydantic model.
        model = self.action_types[kind]
        payload = dict(value) if isinstance(value, dict) else {"value": value}
        if model is not None:
            try:
                model.model_validate({k: v for k, v in payload.items()})
            except Exception as exc:  # pydantic.ValidationError, reported as the plugin's words
                errors: list[dict[str, Any]] = getattr(exc, "errors", lambda: [{"msg": str(exc), "loc": ()}])()
                for err in errors:
                    loc = err.get("loc", ())
                    where = join_path(path, ".".join(str(p) for p in loc)) if loc else path
                    if isinstance(value, MarkedDict) and loc and loc[0] in value:
                        self.ctx.error(value, loc[0], where, err.get("msg", str(exc)), use_key=True)
                    else:
                        self.ctx.error(item, kind, where, err.get("msg", str(exc)))
                return None
        _check_templates(self.ctx, value, path)
        return payload


def _check_templates(ctx: ParseContext, value: Any, path: str) -> None:
    """Template syntax errors are found by `check`, not when a customer would have got the message."""

    from ..templates import syntax_error

    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and ("{{" in v or "{%" in v):
                problem = syntax_error(v)
                if problem:
                    ctx.error(value, k, join_path(path, k), f"template error: {problem}")
            elif isinstance(v, dict):
                _check_templates(ctx, v, join_path(path, k))
