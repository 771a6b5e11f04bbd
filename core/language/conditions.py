"""`when:`, `goal:` and `segments:` — the condition trees: all/any/not, segments, events, count/sum/happened,
sequences and absence (docs/rule-language.md, Conditions); property tests are read by `properties.py`.
"""

from __future__ import annotations

import difflib
from typing import Any

from . import ast
from .context import ParseContext, join_path, report_unknown_keys
from .properties import TestFunctions, read_checks
from .values import read_duration, read_number
from .yamlmarks import MarkedDict, MarkedList

SCOPES = ("lead", "account", "deal")


class Conditions:
    """Parses `when:` / `goal:` trees, expanding named segments like Falco macros."""

    KEYS = ("all", "any", "not", "segment", "event", "count", "sum", "happened", "sequence", "no", *SCOPES)

    def __init__(self, ctx: ParseContext, segments: dict[str, tuple[Any, str]],
                 functions: TestFunctions | None = None):
        self.ctx = ctx
        self.segments = segments
        self.functions = functions or {}
        self._expanding: list[str] = []

    def parse(self, container: Any, key: Any, path: str) -> ast.Condition | None:
        node = container[key]
        line = self.ctx.line(container, key)
        if isinstance(node, MarkedList):
            # A bare list under `when:` means all of them, as admins expect.
            return self._group(ast.AllOf, container, key, path, line)
        if not isinstance(node, MarkedDict) or not node:
            self.ctx.error(container, key, path, f"a condition is a mapping such as `event: page_view`; got {node!r}")
            return None
        if len(node) > 1:
            # Several keys at one level are all required, like a short `all:`.
            items = []
            for k in node:
                sub = MarkedDict({k: node[k]})
                sub.mark, sub.key_marks, sub.value_marks = node.key_marks[k], {k: node.key_marks[k]}, {k: node.value_marks[k]}
                holder = MarkedList([sub])
                holder.mark, holder.item_marks = sub.mark, [sub.mark]
                parsed = self.parse(holder, 0, path)
                if parsed is not None:
                    items.append(parsed)
            return ast.AllOf(path, line, tuple(items)) if len(items) == len(node) else None
        (kind, value), = node.items()
        sub_path = join_path(path, kind)
        if kind not in self.KEYS:
            close = difflib.get_close_matches(str(kind), self.KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; use one of: {', '.join(self.KEYS)}"
            self.ctx.error(node, kind, sub_path, f"unknown condition {kind!r}{hint}", use_key=True)
            return None
        if kind in ("all", "any"):
            return self._group(ast.AllOf if kind == "all" else ast.AnyOf, node, kind, sub_path, line)
        if kind == "not":
            inner = self.parse(node, kind, sub_path)
            return ast.Not(sub_path, line, inner) if inner else None
        if kind == "segment":
            return self._segment(node, kind, sub_path)
        if kind == "event":
            flt = self._filter(node, kind, sub_path, allow=set())
            return ast.EventIs(sub_path, line, flt[0]) if flt else None
        if kind in ("count", "sum", "happened"):
            return self._tally(kind, node, sub_path, line)
        if kind == "sequence":
            return self._sequence(node, sub_path, line)
        if kind == "no":
            return self._absence(node, sub_path, line)
        return self._props(kind, node, sub_path, line)

    def _group(self, cls: type[ast.AllOf] | type[ast.AnyOf], container: Any, key: Any, path: str,
               line: int) -> ast.Condition | None:
        items = container[key]
        if not isinstance(items, MarkedList) or not items:
            self.ctx.error(container, key, path, "needs a list of one or more conditions")
            return None
        parsed = [self.parse(items, i, join_path(path, i)) for i in range(len(items))]
        conditions = [p for p in parsed if p is not None]
        if len(conditions) != len(parsed):
            return None
        return cls(path, line, tuple(conditions))

    def _segment(self, container: Any, key: Any, path: str) -> ast.Condition | None:
        name = container[key]
        if not isinstance(name, str):
            self.ctx.error(container, key, path, "`segment:` takes the name of a segment defined under `segments:`")
            return None
        if name not in self.segments:
            close = difflib.get_close_matches(str(name), list(self.segments), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; define it under `segments:`"
            self.ctx.error(container, key, path, f"unknown segment {name!r}{hint}")
            return None
        if name in self._expanding:
            self.ctx.error(container, key, path, f"segment {name!r} refers to itself ({' → '.join(self._expanding + [name])})")
            return None
        self._expanding.append(name)
        try:
            holder, seg_key = self.segments[name]
            return self.parse(holder, seg_key, f"segments.{name}")
        finally:
            self._expanding.pop()

    def _filter(self, container: Any, key: Any, path: str,
                allow: set[str]) -> tuple[ast.EventFilter, dict[str, Any]] | None:
        """`page_view` or `{type: page_view, where: {...}, ...allow}` → filter and the extra fields."""

        value = container[key]
        if isinstance(value, str) and value.strip():
            return ast.EventFilter(value.strip()), {}
        if not isinstance(value, MarkedDict):
            self._bad_event(container, key, path)
            return None
        type_key = "type" if "type" in value else "event" if "event" in value else None
        report_unknown_keys(self.ctx, value, {"type", "event", "where"} | allow, path)
        if type_key is None or not isinstance(value[type_key], str):
            self.ctx.error(container, key, path, "name the event type, e.g. `event: page_view`")
            return None
        where: tuple[ast.Check, ...] = ()
        if "where" in value:
            where = read_checks(self.ctx, self.functions, "event", value, "where", join_path(path, "where"))
        extras = {k: value[k] for k in value if k in allow}
        return ast.EventFilter(value[type_key], where), extras

    def _bad_event(self, container: Any, key: Any, path: str) -> None:
        self.ctx.error(container, key, path, "expected an event type (`page_view`) or `{event: page_view, where: {...}}`")

    def _tally(self, kind: str, node: MarkedDict, path: str, line: int) -> ast.Tally | None:
        allow = {"within", "at_least", "at_most", "between", "same"} | ({"field"} if kind == "sum" else set())
        if kind == "happened":
            allow = {"within"}
        parsed = self._filter(node, kind, path, allow)
        if not parsed:
            return None
        flt, extras = parsed
        body = node[kind]
        within = read_duration(self.ctx, body, "within", join_path(path, "within")) if "within" in extras else None
        at_least = at_most = None
        if kind == "happened":
            at_least = 1.0
        else:
            if "between" in extras:
                bounds = extras["between"]
                if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds)):
                    self.ctx.error(body, "between", join_path(path, "between"), "write `between: [3, 5]` (both ends included)")
                    return None
                at_least, at_most = float(bounds[0]), float(bounds[1])
            if "at_least" in extras:
                at_least = read_number(self.ctx, body, "at_least", join_path(path, "at_least"))
            if "at_most" in extras:
                at_most = read_number(self.ctx, body, "at_most", join_path(path, "at_most"))
            if at_least is None and at_most is None:
                if not {"at_least", "at_most"} & set(extras):  # else a bad number was reported already
                    self.ctx.error(node, kind, path, f"say how many: `at_least`, `at_most` or `between` for this {kind}")
                return None
        sum_of = None
        if kind == "sum":
            if "field" not in extras:
                self.ctx.error(node, kind, path, "a sum needs `field:` naming the event property to add up")
                return None
            sum_of = str(extras["field"])
        same: tuple[str, ...] = ()
        if "same" in extras:
            same = self._same(body, path)
            if within is None and "within" not in extras:
                # per-value counts come from the kept history, which only windows bound
                self.ctx.error(body, "same", join_path(path, "same"),
                               f"a {kind} with `same:` needs `within:` (e.g. `within: 7d`): counts per value are "
                               "kept only for a window")
                return None
        return ast.Tally(path, line, flt, within, at_least, at_most, sum_of, same)

    def _sequence(self, node: MarkedDict, path: str, line: int) -> ast.Sequence | None:
        body = node["sequence"]
        if not isinstance(body, MarkedDict):
            self.ctx.error(node, "sequence", path, "write `sequence: {steps: [a, b], within: 1h}`")
            return None
        report_unknown_keys(self.ctx, body, {"steps", "within", "same"}, path)
        steps = body.get("steps")
        if not isinstance(steps, MarkedList) or len(steps) < 2:
            self.ctx.error(body, "steps" if "steps" in body else None, join_path(path, "steps"), "a sequence needs `steps:` with two or more events")
            return None
        if "within" not in body:
            self.ctx.error(node, "sequence", path, "a sequence needs `within:` (how long from the first step to the last)")
            return None
        within = read_duration(self.ctx, body, "within", join_path(path, "within"))
        filters = []
        for i in range(len(steps)):
            parsed = self._filter(steps, i, join_path(join_path(path, "steps"), i), set())
            if parsed:
                filters.append(parsed[0])
        if within is None or len(filters) != len(steps):
            return None
        return ast.Sequence(path, line, tuple(filters), within, self._same(body, path))

    def _same(self, body: MarkedDict, path: str) -> tuple[str, ...]:
        if "same" not in body:
            return ()
        same = body["same"]
        if isinstance(same, str):
            return (same,)
        if isinstance(same, list) and all(isinstance(s, str) for s in same):
            return tuple(same)
        self.ctx.error(body, "same", join_path(path, "same"), "`same:` names event properties, e.g. `same: ticket_id`")
        return ()

    def _absence(self, node: MarkedDict, path: str, line: int) -> ast.Absence | None:
        parsed = self._filter(node, "no", path, {"within", "after", "for", "same"})
        if not parsed:
            return None
        flt, extras = parsed
        body = node["no"]
        after = within = quiet_for = None
        if "for" in extras:
            quiet_for = read_duration(self.ctx, body, "for", join_path(path, "for"))
            if "after" in extras or "within" in extras:
                self.ctx.error(body, "for", join_path(path, "for"), "use either `for:` (nothing for a while) or `after:` with `within:`")
                return None
        elif "after" in extras:
            anchor = self._filter(body, "after", join_path(path, "after"), set())
            if not anchor:
                return None
            after = anchor[0]
            if "within" not in extras:
                self.ctx.error(node, "no", path, "say how long to wait: `within: 24h`")
                return None
            within = read_duration(self.ctx, body, "within", join_path(path, "within"))
        else:
            self.ctx.error(node, "no", path, "say since when: `after: <event>` with `within: 24h`, or `for: 30d`")
            return None
        if (quiet_for is None) and (within is None):
            return None
        same = self._same(body, path) if isinstance(body, MarkedDict) and "same" in body else ()
        return ast.Absence(path, line, flt, after, within, quiet_for, same)

    def _props(self, scope: str, node: MarkedDict, path: str, line: int) -> ast.Props | None:
        checks = read_checks(self.ctx, self.functions, scope, node, scope, path)
        return ast.Props(path, line, scope, checks) if checks else None
