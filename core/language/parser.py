"""YAML rule packs → `ast.Pack`, collecting every error with its file, line and column.

The whole language is checked here; the reference is docs/rule-language.md. Nothing is silently ignored:
an unknown key is an error that names the keys that are allowed.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from pathlib import Path
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from ..models import stable_hash
from . import ast
from .durations import Duration, parse_duration
from .errors import PackError, RuleError, VarsOrigin
from .yamlmarks import DuplicateKey, MarkedDict, MarkedList, load_marked, mark_of, own_mark

PACK_KEYS = {"pack", "description", "vars", "segments", "rules", "calendar", "messages", "scoring", "locale"}
RULE_KEYS = {"id", "description", "owner", "mode", "priority", "group", "about", "when", "then", "limit",
             "cooldown", "goal", "per"}
SCOPES = ("lead", "account", "deal")
BUILTIN_ACTIONS = {"score", "tag", "untag", "set", "task", "message", "webhook"}
DELAYABLE = {"task", "message", "webhook"}
TEST_OPS = {"equals": "eq", "not": "neq", "in": "in", "not_in": "not_in", "contains": "contains",
            "matches": "matches", "at_least": "ge", "above": "gt", "at_most": "le", "below": "lt",
            "between": "between", "missing": "missing", "exists": "exists", "within_next": "within_next",
            "within_last": "within_last", "older_than": "older_than", "past": "past", "future": "future"}
WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_VAR = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_LIMIT = re.compile(
    r"^(?:(?P<every>every time)|(?:(?P<once>once)|at most (?P<n>\d+))(?: per (?:lead|account|deal|person))?"
    r"(?: per (?P<per>[0-9.a-z]+))?)$"
)


class _Ctx:
    """Where we are while walking one file: turns (container, key) into file:line:col errors."""

    def __init__(self, file: str, errors: list[RuleError]):
        self.file = file
        self.errors = errors
        # deployment overrides: their names, where they were written, and the values they put into the pack
        self.pack = ""
        self.overridden: set[str] = set()
        self.origin: VarsOrigin | None = None
        self._from_override: dict[tuple[int, Any], tuple[str, str | None, tuple[int, int]]] = {}
        self._inside_override: dict[int, tuple[str, str | None, tuple[int, int]]] = {}
        self._keep: list[Any] = []  # the values whose ids are remembered above stay alive while we walk

    def note_override(self, parent: Any, key: Any, name: str, value: Any, text: str | None) -> None:
        """`parent[key]` now holds (or was built from, `text`) the deployment's override of `name`."""

        use = mark_of(parent, key) or own_mark(parent) or (1, 1)
        self._from_override[(id(parent), key)] = (name, text, use)
        self._keep += [parent, value]
        stack = [value]
        while stack:  # errors may point inside a list or mapping the override gave
            item = stack.pop()
            if isinstance(item, (dict, list)):
                self._inside_override[id(item)] = (name, text, use)
                stack += list(item.values()) if isinstance(item, dict) else list(item)

    def error(self, container: Any, key: Any, path: str, message: str, use_key: bool = False) -> None:
        mark = None
        if use_key and isinstance(container, MarkedDict):
            mark = container.key_marks.get(key)
        mark = mark or mark_of(container, key) or own_mark(container) or (1, 1)
        came = self._from_override.get((id(container), key)) or self._inside_override.get(id(container))
        if came is not None and self.origin is not None:
            # the pack is fine with its own value: the deployment's value is wrong, so say it there
            name, text, use = came
            used = f"used at {self.file}:{use[0]}:{use[1]}" + (f" in {text.strip()!r}" if text else "")
            self.errors.append(self.origin.error((self.pack, name), f"{message} ({used})", at_value=True))
            return
        self.errors.append(RuleError(self.file, mark[0], mark[1], path, message))

    def line(self, container: Any, key: Any) -> int:
        mark = mark_of(container, key) or own_mark(container) or (1, 1)
        return mark[0]


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _unknown_keys(ctx: _Ctx, mapping: MarkedDict, allowed: Iterable[str], path: str) -> None:
    allowed = sorted(allowed)
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; allowed here: {', '.join(allowed)}"
            ctx.error(mapping, key, _join(path, key), f"unknown field {key!r}{hint}", use_key=True)


# ------------------------------------------------------------------ variables

def _substitute(ctx: _Ctx, node: Any, variables: dict[str, Any], path: str, parent: Any = None,
                key: Any = None) -> Any:
    """Replace ${name} with the pack variable; a whole-value reference keeps the variable's type."""

    if isinstance(node, MarkedDict):
        for k in list(node):
            node[k] = _substitute(ctx, node[k], variables, _join(path, k), node, k)
        return node
    if isinstance(node, MarkedList):
        for i, item in enumerate(node):
            node[i] = _substitute(ctx, item, variables, _join(path, i), node, i)
        return node
    if isinstance(node, str) and "${" in node:
        whole = _VAR.fullmatch(node.strip())
        names = _VAR.findall(node)
        missing = [n for n in names if n not in variables]
        if missing:
            close = difflib.get_close_matches(missing[0], list(variables), n=1)
            hint = f"; did you mean ${{{close[0]}}}?" if close else "; declare it under `vars:`"
            ctx.error(parent, key, path, f"unknown variable ${{{missing[0]}}}{hint}")
            return node
        if whole:
            if whole.group(1) in ctx.overridden:
                ctx.note_override(parent, key, whole.group(1), variables[whole.group(1)], None)
            return variables[whole.group(1)]
        text = _VAR.sub(lambda m: str(variables[m.group(1)]), node)
        for name in names:
            if name in ctx.overridden:
                ctx.note_override(parent, key, name, text, node)
                break
        return text
    return node


# ------------------------------------------------------------------ values

def _duration(ctx: _Ctx, container: Any, key: Any, path: str) -> Duration | None:
    try:
        return parse_duration(container[key])
    except ValueError as exc:
        ctx.error(container, key, path, str(exc))
        return None


def _as_number(value: Any) -> float | None:
    """Numbers, and strings such as "+30" or "-10"; never booleans."""

    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(" ", ""))
        except ValueError:
            return None
    return None


def _number(ctx: _Ctx, container: Any, key: Any, path: str) -> float | None:
    number = _as_number(container[key])
    if number is None:
        ctx.error(container, key, path, f"{container[key]!r} is not a number")
    return number


def _time_of_day(ctx: _Ctx, container: Any, key: Any, path: str) -> dt.time | None:
    value = str(container[key])
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if not match or int(match.group(1)) > 24 or int(match.group(2)) > 59:
        ctx.error(container, key, path, f"{value!r} is not a time of day; write HH:MM, e.g. 09:00")
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    return dt.time(0, 0) if hour == 24 else dt.time(hour, minute)


def _timezone(ctx: _Ctx, container: Any, key: Any, path: str) -> str | None:
    value = str(container[key])
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        ctx.error(container, key, path, f"{value!r} is not a time zone; write an IANA name such as Asia/Seoul")
        return None
    return value


# ------------------------------------------------------------------ conditions

class _Conditions:
    """Parses `when:` / `goal:` trees, expanding named segments like Falco macros."""

    KEYS = ("all", "any", "not", "segment", "event", "count", "sum", "happened", "sequence", "no", *SCOPES)

    def __init__(self, ctx: _Ctx, segments: dict[str, tuple[Any, str]],
                 functions: dict[str, Callable[[Any, Any], bool]] | None = None):
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
        sub_path = _join(path, kind)
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

    def _group(self, cls: type, container: Any, key: Any, path: str, line: int) -> ast.Condition | None:
        items = container[key]
        if not isinstance(items, MarkedList) or not items:
            self.ctx.error(container, key, path, "needs a list of one or more conditions")
            return None
        parsed = [self.parse(items, i, _join(path, i)) for i in range(len(items))]
        if any(p is None for p in parsed):
            return None
        return cls(path, line, tuple(parsed))

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

    def _filter(self, container: Any, key: Any, path: str, allow: set[str]) -> tuple[ast.EventFilter, dict] | None:
        """`page_view` or `{type: page_view, where: {...}, ...allow}` → filter and the extra fields."""

        value = container[key]
        if isinstance(value, str):
            return (ast.EventFilter(value.strip()), {}) if value.strip() else self._bad_event(container, key, path)
        if not isinstance(value, MarkedDict):
            return self._bad_event(container, key, path)
        type_key = "type" if "type" in value else "event" if "event" in value else None
        _unknown_keys(self.ctx, value, {"type", "event", "where"} | allow, path)
        if type_key is None or not isinstance(value[type_key], str):
            self.ctx.error(container, key, path, "name the event type, e.g. `event: page_view`")
            return None
        where: tuple[ast.Check, ...] = ()
        if "where" in value:
            where = self._checks("event", value, "where", _join(path, "where"))
        extras = {k: value[k] for k in value if k in allow}
        return ast.EventFilter(value[type_key], where), extras

    def _bad_event(self, container: Any, key: Any, path: str) -> None:
        self.ctx.error(container, key, path, "expected an event type (`page_view`) or `{event: page_view, where: {...}}`")
        return None

    def _tally(self, kind: str, node: MarkedDict, path: str, line: int) -> ast.Tally | None:
        allow = {"within", "at_least", "at_most", "between", "same"} | ({"field"} if kind == "sum" else set())
        if kind == "happened":
            allow = {"within"}
        parsed = self._filter(node, kind, path, allow)
        if not parsed:
            return None
        flt, extras = parsed
        body = node[kind]
        within = _duration(self.ctx, body, "within", _join(path, "within")) if "within" in extras else None
        at_least = at_most = None
        if kind == "happened":
            at_least = 1.0
        else:
            if "between" in extras:
                bounds = extras["between"]
                if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds)):
                    self.ctx.error(body, "between", _join(path, "between"), "write `between: [3, 5]` (both ends included)")
                    return None
                at_least, at_most = float(bounds[0]), float(bounds[1])
            if "at_least" in extras:
                at_least = _number(self.ctx, body, "at_least", _join(path, "at_least"))
            if "at_most" in extras:
                at_most = _number(self.ctx, body, "at_most", _join(path, "at_most"))
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
                self.ctx.error(body, "same", _join(path, "same"),
                               f"a {kind} with `same:` needs `within:` (e.g. `within: 7d`): counts per value are "
                               "kept only for a window")
                return None
        return ast.Tally(path, line, flt, within, at_least, at_most, sum_of, same)

    def _sequence(self, node: MarkedDict, path: str, line: int) -> ast.Sequence | None:
        body = node["sequence"]
        if not isinstance(body, MarkedDict):
            self.ctx.error(node, "sequence", path, "write `sequence: {steps: [a, b], within: 1h}`")
            return None
        _unknown_keys(self.ctx, body, {"steps", "within", "same"}, path)
        steps = body.get("steps")
        if not isinstance(steps, MarkedList) or len(steps) < 2:
            self.ctx.error(body, "steps" if "steps" in body else None, _join(path, "steps"), "a sequence needs `steps:` with two or more events")
            return None
        if "within" not in body:
            self.ctx.error(node, "sequence", path, "a sequence needs `within:` (how long from the first step to the last)")
            return None
        within = _duration(self.ctx, body, "within", _join(path, "within"))
        filters = []
        for i in range(len(steps)):
            parsed = self._filter(steps, i, _join(_join(path, "steps"), i), set())
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
        self.ctx.error(body, "same", _join(path, "same"), "`same:` names event properties, e.g. `same: ticket_id`")
        return ()

    def _absence(self, node: MarkedDict, path: str, line: int) -> ast.Absence | None:
        parsed = self._filter(node, "no", path, {"within", "after", "for", "same"})
        if not parsed:
            return None
        flt, extras = parsed
        body = node["no"]
        after = within = quiet_for = None
        if "for" in extras:
            quiet_for = _duration(self.ctx, body, "for", _join(path, "for"))
            if "after" in extras or "within" in extras:
                self.ctx.error(body, "for", _join(path, "for"), "use either `for:` (nothing for a while) or `after:` with `within:`")
                return None
        elif "after" in extras:
            anchor = self._filter(body, "after", _join(path, "after"), set())
            if not anchor:
                return None
            after = anchor[0]
            if "within" not in extras:
                self.ctx.error(node, "no", path, "say how long to wait: `within: 24h`")
                return None
            within = _duration(self.ctx, body, "within", _join(path, "within"))
        else:
            self.ctx.error(node, "no", path, "say since when: `after: <event>` with `within: 24h`, or `for: 30d`")
            return None
        if (quiet_for is None) and (within is None):
            return None
        same = self._same(body, path) if isinstance(body, MarkedDict) and "same" in body else ()
        return ast.Absence(path, line, flt, after, within, quiet_for, same)

    def _props(self, scope: str, node: MarkedDict, path: str, line: int) -> ast.Props | None:
        checks = self._checks(scope, node, scope, path)
        return ast.Props(path, line, scope, checks) if checks else None

    def _checks(self, scope: str, container: Any, key: Any, path: str) -> tuple[ast.Check, ...]:
        body = container[key]
        if not isinstance(body, MarkedDict) or not body:
            self.ctx.error(container, key, path, f"write property tests, e.g. `{scope}: {{industry: manufacturing}}`")
            return ()
        out = []
        for name, spec in body.items():
            tests = self._tests(body, name, _join(path, name))
            if tests:
                out.append(ast.Check(scope, str(name), tuple(tests)))
        return tuple(out)

    def _tests(self, container: MarkedDict, name: Any, path: str) -> list[ast.Test]:
        spec = container[name]
        if not isinstance(spec, MarkedDict):
            if isinstance(spec, MarkedList):
                return [ast.Test("in", tuple(spec))]
            return [ast.Test("eq", spec)]
        tests = []
        for word, value in spec.items():
            op = TEST_OPS.get(word)
            sub = _join(path, word)
            if op is None and word in self.functions:
                tests.append(ast.Test("func", (str(word), self.functions[word], value)))
                continue
            if op is None:
                close = difflib.get_close_matches(str(word), list(TEST_OPS) + list(self.functions), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; tests are: {', '.join(TEST_OPS)}"
                self.ctx.error(spec, word, sub, f"unknown test {word!r}{hint}", use_key=True)
                continue
            if op in ("in", "not_in"):
                if not isinstance(value, list):
                    self.ctx.error(spec, word, sub, f"`{word}:` takes a list, e.g. [a, b]")
                    continue
                tests.append(ast.Test(op, tuple(value)))
            elif op == "between":
                if not (isinstance(value, list) and len(value) == 2):
                    self.ctx.error(spec, word, sub, "write `between: [low, high]` (both ends included)")
                    continue
                tests += [ast.Test("ge", value[0]), ast.Test("le", value[1])]
            elif op in ("ge", "gt", "le", "lt"):
                number = _number(self.ctx, spec, word, sub)
                if number is not None:
                    tests.append(ast.Test(op, number))
            elif op == "matches":
                try:
                    re.compile(str(value))
                except re.error as exc:
                    self.ctx.error(spec, word, sub, f"{value!r} is not a valid regular expression: {exc}")
                    continue
                tests.append(ast.Test(op, str(value)))
            elif op in ("missing", "exists", "past", "future"):
                if not isinstance(value, bool):
                    self.ctx.error(spec, word, sub, f"write `{word}: true` or `{word}: false`")
                    continue
                flipped = {"missing": "exists", "exists": "missing", "past": "future", "future": "past"}[op]
                tests.append(ast.Test(op if value else flipped))
            elif op in ("within_next", "within_last", "older_than"):
                duration = _duration(self.ctx, spec, word, sub)
                if duration is not None:
                    tests.append(ast.Test(op, duration))
            else:
                tests.append(ast.Test(op, value))
        return tests


# ------------------------------------------------------------------ actions

class _Actions:
    def __init__(self, ctx: _Ctx, action_types: dict[str, Any], templates: dict[tuple[str, str], ast.Template]):
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
            spec = self._one(items, i, _join(path, i))
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
        sub = _join(path, kind)
        line = self.ctx.line(item, kind)
        if kind not in known:
            close = difflib.get_close_matches(str(kind), sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known actions: {', '.join(sorted(known))}"
            self.ctx.error(item, kind, sub, f"unknown action {kind!r}{hint}", use_key=True)
            return None
        after = None
        if "after" in item:
            if kind not in DELAYABLE and kind not in self.action_types:
                self.ctx.error(item, "after", _join(path, "after"),
                               f"`{kind}` changes the record at once and cannot be delayed; delay a task, message or webhook instead")
                return None
            after = _duration(self.ctx, item, "after", _join(path, "after"))
            if after is None:
                return None
        fields = self._fields(kind, item, sub)
        if fields is None:
            return None
        return ast.ActionSpec(kind, fields, after, sub, line)

    def _fields(self, kind: str, item: MarkedDict, path: str) -> dict[str, Any] | None:
        value = item[kind]
        if kind == "score":
            points = _as_number(value)
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
            _unknown_keys(self.ctx, value, permitted, path)
            for field_name in sorted(required - set(value)):
                self.ctx.error(item, kind, path, f"`{kind}` needs `{field_name}:`")
            fields = dict(value)
            if kind == "task":
                if "due" in value:
                    due = _duration(self.ctx, value, "due", _join(path, "due"))
                    fields["due"] = float(due) if due is not None else None
                if fields.get("priority", "medium") not in ("low", "medium", "high"):
                    self.ctx.error(value, "priority", _join(path, "priority"), "priority is low, medium or high")
            if kind == "message":
                if "template" not in value and "body" not in value:
                    self.ctx.error(item, kind, path, "a message needs `template:` (a file in the pack's templates/) or `body:`")
                    return None
                name = value.get("template")
                if name and not any(t[0] == name for t in self.templates):
                    close = difflib.get_close_matches(str(name), sorted({t[0] for t in self.templates}), n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else "; add templates/<name>.<locale>.txt to the pack"
                    self.ctx.error(value, "template", _join(path, "template"), f"no template {name!r}{hint}")
                if "advertising" in value and not isinstance(value["advertising"], bool):
                    self.ctx.error(value, "advertising", _join(path, "advertising"), "write `advertising: true` or `false`")
            _check_templates(self.ctx, value, path)
            return fields
        # A plugin's action type: it validates its own fields with its pydantic model.
        model = self.action_types[kind]
        payload = dict(value) if isinstance(value, dict) else {"value": value}
        if model is not None:
            try:
                model.model_validate({k: v for k, v in payload.items()})
            except Exception as exc:  # pydantic.ValidationError, reported as the plugin's words
                errors = getattr(exc, "errors", lambda: [{"msg": str(exc), "loc": ()}])()
                for err in errors:
                    loc = err.get("loc", ())
                    where = _join(path, ".".join(str(p) for p in loc)) if loc else path
                    if isinstance(value, MarkedDict) and loc and loc[0] in value:
                        self.ctx.error(value, loc[0], where, err.get("msg", str(exc)), use_key=True)
                    else:
                        self.ctx.error(item, kind, where, err.get("msg", str(exc)))
                return None
        _check_templates(self.ctx, value, path)
        return payload


def _check_templates(ctx: _Ctx, value: Any, path: str) -> None:
    """Template syntax errors are found by `check`, not when a customer would have got the message."""

    from ..templates import syntax_error

    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and ("{{" in v or "{%" in v):
                problem = syntax_error(v)
                if problem:
                    ctx.error(value, k, _join(path, k), f"template error: {problem}")
            elif isinstance(v, dict):
                _check_templates(ctx, v, _join(path, k))


# ------------------------------------------------------------------ the pack

def _limit(ctx: _Ctx, rule: MarkedDict, path: str) -> ast.Limit | None:
    if "limit" not in rule:
        return ast.ONCE
    text = " ".join(str(rule["limit"]).strip().lower().split())
    match = _LIMIT.match(text)
    if not match:
        ctx.error(rule, "limit", _join(path, "limit"),
                  f"{rule['limit']!r} is not a limit; write `every time`, `once per lead`, "
                  "`once per lead per 30d` or `at most 3 per 7d`")
        return None
    if match.group("every"):
        return ast.EVERY_TIME
    times = 1 if match.group("once") else int(match.group("n"))
    per = None
    if match.group("per"):
        try:
            per = parse_duration(match.group("per"))
        except ValueError as exc:
            ctx.error(rule, "limit", _join(path, "limit"), str(exc))
            return None
    if times < 1:
        ctx.error(rule, "limit", _join(path, "limit"), "`at most 0` would never fire; set `mode: disabled` instead")
        return None
    return ast.Limit(times, per, text)


_PER = re.compile(r"^(?:(?P<scope>event|lead|account|deal)\.)?(?P<name>[^\s.][^\s]*)$")


def _per(ctx: _Ctx, rule: MarkedDict, path: str, limit: ast.Limit | None, cooldown: Any) -> ast.PerKey | None:
    """`per: ticket_id` (an event property) or `per: deal.close_date` (a record's): limits count per value."""

    if "per" not in rule:
        return None
    value = rule["per"]
    match = _PER.match(value.strip()) if isinstance(value, str) else None
    if not match:
        ctx.error(rule, "per", _join(path, "per"),
                  f"{value!r}: `per:` names one property whose value the limit counts by, e.g. `per: ticket_id` "
                  "(the event's) or `per: deal.close_date` (a record's)")
        return None
    if limit is not None and limit.times is None and cooldown is None:
        ctx.error(rule, "per", _join(path, "per"),
                  "`per:` counts the limit and cooldown per value, but this rule fires every time and has no "
                  "cooldown; write e.g. `limit: once` (once per value) or drop `per:`")
        return None
    return ast.PerKey(match.group("scope") or "event", match.group("name"), value.strip())


def _templates(pack_dir: Path | None, errors: list[RuleError]) -> dict[tuple[str, str], ast.Template]:
    """templates/<name>.<locale>.txt; an optional first line `Subject: ...`."""

    found: dict[tuple[str, str], ast.Template] = {}
    if pack_dir is None or not (pack_dir / "templates").is_dir():
        return found
    from ..templates import syntax_error

    for file in sorted((pack_dir / "templates").glob("*.txt")):
        parts = file.name[:-4].rsplit(".", 1)
        if len(parts) != 2:
            errors.append(RuleError(str(file), 1, 1, "", "name templates <name>.<locale>.txt, e.g. welcome.ko.txt"))
            continue
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            errors.append(RuleError(str(file), 1, 1, "", f"not UTF-8 text: {exc}"))
            continue
        subject, body = "", text
        first, _, rest = text.partition("\n")
        if first.lower().startswith("subject:"):
            subject, body = first.split(":", 1)[1].strip(), rest.lstrip("\n")
        for n, part in enumerate((subject, body)):
            problem = syntax_error(part)
            if problem:
                errors.append(RuleError(str(file), 1, 1, "", f"template error: {problem}"))
        found[(parts[0], parts[1])] = ast.Template(subject, body.rstrip("\n"), str(file))
    return found


def parse_pack_text(text: str, file: str, pack_dir: Path | None = None, overrides: dict[str, Any] | None = None,
                    action_types: dict[str, Any] | None = None,
                    condition_functions: dict[str, Callable[[Any, Any], bool]] | None = None,
                    origin: VarsOrigin | None = None) -> ast.Pack:
    """Parse one pack file's text. Raises PackError with every error found; with `origin`, a bad override is
    reported where the deployment wrote it."""

    errors: list[RuleError] = []
    ctx = _Ctx(file, errors)
    try:
        doc = load_marked(text)
    except DuplicateKey as exc:
        raise PackError([RuleError(file, exc.line, exc.column, "", str(exc))]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = getattr(exc, "problem", None) or str(exc)
        raise PackError([RuleError(file, line, col, "", f"not valid YAML: {problem}")]) from None
    if not isinstance(doc, MarkedDict):
        raise PackError([RuleError(file, 1, 1, "", "a pack is a mapping with `rules:` (and optionally pack, vars, segments)")])
    _unknown_keys(ctx, doc, PACK_KEYS, "")

    name = str(doc.get("pack") or (pack_dir.name if pack_dir else Path(file).stem))
    pack = ast.Pack(name=name, path=str(pack_dir or file), description=str(doc.get("description", "")))
    pack.default_locale = str(doc.get("locale", "ko"))

    variables: dict[str, Any] = {}
    if "vars" in doc:
        if isinstance(doc["vars"], MarkedDict):
            variables = dict(doc["vars"])
        else:
            ctx.error(doc, "vars", "vars", "`vars:` is a mapping of names to values")
    ctx.pack, ctx.origin = name, origin
    for key in (overrides or {}):
        if key not in variables:
            if origin is not None:
                close = difflib.get_close_matches(str(key), list(variables), n=1)
                hint = (f"did you mean {close[0]!r}?" if close else
                        f"it declares {', '.join(sorted(variables))}" if variables else "it declares none")
                errors.append(origin.error((name, str(key)), f"unknown variable of pack {name}; {hint}"))
            else:
                errors.append(RuleError(file, 1, 1, f"vars.{key}", f"override for unknown variable {key!r}; the pack declares: {', '.join(sorted(variables)) or 'none'}"))
    ctx.overridden = {k for k in (overrides or {}) if k in variables}
    variables.update(overrides or {})
    pack.variables = variables
    for key in [k for k in doc if k != "vars"]:
        doc[key] = _substitute(ctx, doc[key], variables, key, doc, key)

    pack.templates = _templates(pack_dir, errors)
    segments: dict[str, tuple[Any, str]] = {}
    if "segments" in doc:
        if isinstance(doc["segments"], MarkedDict):
            segments = {str(k): (doc["segments"], k) for k in doc["segments"]}
        else:
            ctx.error(doc, "segments", "segments", "`segments:` maps names to conditions")
    conditions = _Conditions(ctx, segments, condition_functions)
    for seg in segments:  # check every segment even when no rule uses it yet
        conditions.parse(doc["segments"], seg, f"segments.{seg}")

    _pack_settings(ctx, doc, pack)

    rules = doc.get("rules")
    if not isinstance(rules, MarkedList):
        ctx.error(doc, "rules" if "rules" in doc else None, "rules", "a pack needs `rules:`, a list of rules")
        raise PackError(errors)
    actions = _Actions(ctx, action_types or {}, pack.templates)
    seen: dict[str, int] = {}
    for i, raw in enumerate(rules):
        rule = _rule(ctx, rules, i, pack, conditions, actions)
        if rule is None:
            continue
        if rule.id in seen:
            ctx.error(rules[i], "id", f"rules[{i}].id", f"rule id {rule.id!r} is already used at line {seen[rule.id]}")
            continue
        seen[rule.id] = rule.line
        pack.rules.append(rule)
    if errors:
        raise PackError(errors)
    return pack


def _pack_settings(ctx: _Ctx, doc: MarkedDict, pack: ast.Pack) -> None:
    if isinstance(doc.get("calendar"), MarkedDict):
        cal = doc["calendar"]
        _unknown_keys(ctx, cal, {"timezone", "days", "hours"}, "calendar")
        tz = _timezone(ctx, cal, "timezone", "calendar.timezone") if "timezone" in cal else "UTC"
        days = tuple(range(5))
        if "days" in cal:
            raw = cal["days"] if isinstance(cal["days"], list) else [cal["days"]]
            try:
                days = tuple(sorted(WEEKDAYS[str(d).lower()[:3]] for d in raw))
            except KeyError:
                ctx.error(cal, "days", "calendar.days", "days are mon, tue, wed, thu, fri, sat, sun")
        start, end = dt.time(9), dt.time(18)
        if "hours" in cal:
            match = re.fullmatch(r"\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*", str(cal["hours"]))
            if not match:
                ctx.error(cal, "hours", "calendar.hours", "write hours as `09:00-18:00`")
            else:
                holder = {"a": match.group(1), "b": match.group(2)}
                start = _time_of_day(ctx, holder, "a", "calendar.hours") or start
                end = _time_of_day(ctx, holder, "b", "calendar.hours") or end
        pack.calendar = ast.Calendar(tz or "UTC", days, start, end)
    if isinstance(doc.get("messages"), MarkedDict):
        msg = doc["messages"]
        _unknown_keys(ctx, msg, {"max_per_person", "quiet_hours"}, "messages")
        cap = per = None
        if "max_per_person" in msg:
            match = re.fullmatch(r"\s*(\d+)\s+per\s+(\S+)\s*", str(msg["max_per_person"]))
            if not match:
                ctx.error(msg, "max_per_person", "messages.max_per_person", "write e.g. `3 per 7d`")
            else:
                cap = int(match.group(1))
                try:
                    per = parse_duration(match.group(2))
                except ValueError as exc:
                    ctx.error(msg, "max_per_person", "messages.max_per_person", str(exc))
        quiet = None
        if isinstance(msg.get("quiet_hours"), MarkedDict):
            q = msg["quiet_hours"]
            _unknown_keys(ctx, q, {"from", "to", "timezone"}, "messages.quiet_hours")
            start = _time_of_day(ctx, q, "from", "messages.quiet_hours.from") if "from" in q else None
            end = _time_of_day(ctx, q, "to", "messages.quiet_hours.to") if "to" in q else None
            tz = _timezone(ctx, q, "timezone", "messages.quiet_hours.timezone") if "timezone" in q else pack.calendar.timezone
            if start and end and tz:
                quiet = ast.QuietHours(start, end, tz)
            elif "from" not in q or "to" not in q:
                ctx.error(msg, "quiet_hours", "messages.quiet_hours", "quiet hours need `from:` and `to:`, e.g. 21:00 and 08:00")
        pack.messages = ast.MessagePolicy(cap, per, quiet)
    if isinstance(doc.get("scoring"), MarkedDict):
        sc = doc["scoring"]
        _unknown_keys(ctx, sc, {"decay"}, "scoring")
        decay = sc.get("decay")
        if isinstance(decay, MarkedDict):
            _unknown_keys(ctx, decay, {"points", "percent", "every", "after_idle"}, "scoring.decay")
            every = _duration(ctx, decay, "every", "scoring.decay.every") if "every" in decay else None
            idle = _duration(ctx, decay, "after_idle", "scoring.decay.after_idle") if "after_idle" in decay else None
            points = _number(ctx, decay, "points", "scoring.decay.points") if "points" in decay else None
            percent = _number(ctx, decay, "percent", "scoring.decay.percent") if "percent" in decay else None
            if every is None or (points is None) == (percent is None):
                ctx.error(sc, "decay", "scoring.decay", "write `decay: {points: 5, every: 7d}` or `{percent: 10, every: 30d}`")
            else:
                pack.decay = ast.Decay(points, percent, every, idle)
        elif decay is not None:
            ctx.error(sc, "decay", "scoring.decay", "write `decay: {points: 5, every: 7d}`")


def _rule(ctx: _Ctx, rules: MarkedList, i: int, pack: ast.Pack, conditions: _Conditions,
          actions: _Actions) -> ast.Rule | None:
    raw = rules[i]
    path = f"rules[{i}]"
    if not isinstance(raw, MarkedDict):
        ctx.error(rules, i, path, "a rule is a mapping with id, when and then")
        return None
    n_errors = len(ctx.errors)
    _unknown_keys(ctx, raw, RULE_KEYS, path)
    for required in ("id", "when", "then"):
        if required not in raw:
            ctx.error(rules, i, path, f"a rule needs `{required}:`")
    if any(k not in raw for k in ("id", "when", "then")):
        return None
    rule_id = str(raw["id"])
    if not _ID.match(rule_id):
        ctx.error(raw, "id", f"{path}.id", f"{rule_id!r}: ids are lower-case letters, digits, -, _ and . (e.g. hot-lead)")
    mode = str(raw.get("mode", "enabled"))
    if mode not in ("enabled", "disabled", "shadow"):
        ctx.error(raw, "mode", f"{path}.mode", f"mode is enabled, disabled or shadow; got {mode!r}")
    about = str(raw.get("about", "lead"))
    if about not in SCOPES:
        ctx.error(raw, "about", f"{path}.about", f"a rule is about a lead, account or deal; got {about!r}")
    priority = raw.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        ctx.error(raw, "priority", f"{path}.priority", f"priority is a whole number (higher wins); got {priority!r}")
        priority = 0
    when = conditions.parse(raw, "when", f"{path}.when")
    goal = conditions.parse(raw, "goal", f"{path}.goal") if "goal" in raw else None
    then = actions.parse(raw, "then", f"{path}.then")
    limit = _limit(ctx, raw, path)
    cooldown = _duration(ctx, raw, "cooldown", f"{path}.cooldown") if "cooldown" in raw else None
    per = _per(ctx, raw, path, limit, cooldown)
    if len(ctx.errors) > n_errors or when is None or limit is None:
        return None
    version = stable_hash(pack.name, _plain(raw), length=12)
    return ast.Rule(
        id=rule_id, pack=pack.name, about=about, description=str(raw.get("description", "")),
        owner=str(raw.get("owner", "")), mode=mode, priority=priority,
        group=str(raw["group"]) if raw.get("group") else None, when=when, then=tuple(then), limit=limit,
        cooldown=cooldown, goal=goal, version=version, file=ctx.file, line=ctx.line(rules, i), per=per,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
