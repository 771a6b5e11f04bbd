"""Property tests — `lead: {score: {at_least: 80}}`, an event's `where:` — and the tests plugins add
(docs/rule-language.md, Property tests).
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Callable

from . import ast
from .context import ParseContext, join_path
from .values import read_duration, read_number
from .yamlmarks import MarkedDict, MarkedList

TEST_OPS = {"equals": "eq", "not": "neq", "in": "in", "not_in": "not_in", "contains": "contains",
            "matches": "matches", "at_least": "ge", "above": "gt", "at_most": "le", "below": "lt",
            "between": "between", "missing": "missing", "exists": "exists", "within_next": "within_next",
            "within_last": "within_last", "older_than": "older_than", "past": "past", "future": "future"}
TestFunctions = dict[str, Callable[[Any, Any], bool]]  # the tests plugins add (`register_conditions`), by name


def read_checks(ctx: ParseContext, functions: TestFunctions, scope: str, container: Any, key: Any,
                path: str) -> tuple[ast.Check, ...]:
    body = container[key]
    if not isinstance(body, MarkedDict) or not body:
        ctx.error(container, key, path, f"write property tests, e.g. `{scope}: {{industry: manufacturing}}`")
        return ()
    out = []
    for name, spec in body.items():
        tests = _tests(ctx, functions, body, name, join_path(path, name))
        if tests:
            out.append(ast.Check(scope, str(name), tuple(tests)))
    return tuple(out)


def _tests(ctx: ParseContext, functions: TestFunctions, container: MarkedDict, name: Any, path: str) -> list[ast.Test]:
    spec = container[name]
    if not isinstance(spec, MarkedDict):
        if isinstance(spec, MarkedList):
            return [ast.Test("in", tuple(spec))]
        return [ast.Test("eq", spec)]
    tests = []
    for word, value in spec.items():
        op = TEST_OPS.get(word)
        sub = join_path(path, word)
        if op is None and word in functions:
            tests.append(ast.Test("func", (str(word), functions[word], value)))
            continue
        if op is None:
            close = difflib.get_close_matches(str(word), list(TEST_OPS) + list(functions), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; tests are: {', '.join(TEST_OPS)}"
            ctx.error(spec, word, sub, f"unknown test {word!r}{hint}", use_key=True)
            continue
        if op in ("in", "not_in"):
            if not isinstance(value, list):
                ctx.error(spec, word, sub, f"`{word}:` takes a list, e.g. [a, b]")
                continue
            tests.append(ast.Test(op, tuple(value)))
        elif op == "between":
            if not (isinstance(value, list) and len(value) == 2):
                ctx.error(spec, word, sub, "write `between: [low, high]` (both ends included)")
                continue
            tests += [ast.Test("ge", value[0]), ast.Test("le", value[1])]
        elif op in ("ge", "gt", "le", "lt"):
            number = read_number(ctx, spec, word, sub)
            if number is not None:
                tests.append(ast.Test(op, number))
        elif op == "matches":
            try:
                re.compile(str(value))
            except re.error as exc:
                ctx.error(spec, word, sub, f"{value!r} is not a valid regular expression: {exc}")
                continue
            tests.append(ast.Test(op, str(value)))
        elif op in ("missing", "exists", "past", "future"):
            if not isinstance(value, bool):
                ctx.error(spec, word, sub, f"write `{word}: true` or `{word}: false`")
                continue
            flipped = {"missing": "exists", "exists": "missing", "past": "future", "future": "past"}[op]
            tests.append(ast.Test(op if value else flipped))
        elif op in ("within_next", "within_last", "older_than"):
            duration = read_duration(ctx, spec, word, sub)
            if duration is not None:
                tests.append(ast.Test(op, duration))
        else:
            tests.append(ast.Test(op, value))
    return tests
