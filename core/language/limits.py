"""What the matching engine can take, checked when a pack is loaded — so `crmrules check` says it, not `run`.

Found by experiment against durable-rules 2.0.28 (`create_ruleset` with a condition built to size):
- `$and`/`$or` nested 16 deep is refused with "Could not create ruleset, error code: 113", which stops
  `run` and `serve`; 15 deep works.
- more than about 511 tests under one `$and`/`$or` makes creating the ruleset hang (510 works, 520 hangs).
- a fact takes at most 254 properties; the compiler gives each value a rule tests a slot (core/decide/
  compiler.py cuts rulesets at 240 slots), so one rule may test at most 240 values.
One condition of the language (a property test, an event filter) takes up to 4 of the engine's levels once
compiled (tests of several properties, several tests of one, `in`, and `not` pushed down to the leaves), so
`all`/`any` may nest 15 - 4 = 11 deep whatever they hold.
"""

from __future__ import annotations

from typing import Any

from . import ast

ENGINE_DEPTH = 15
LEAF_DEPTH = 4
MAX_NESTING = ENGINE_DEPTH - LEAF_DEPTH
MAX_WIDTH = 500
MAX_VALUES = 240


def engine_problems(cond: ast.Condition) -> list[str]:
    """Sentences for each engine limit `cond` goes over (empty when it fits)."""

    problems: list[str] = []
    depth, deepest = _nesting(cond)
    if depth > MAX_NESTING:
        problems.append(f"`all`/`any` nested {depth} deep (deepest at {deepest.path}, line {deepest.line}); the "
                        f"engine takes at most {MAX_NESTING}: flatten it (an `all` directly inside an `all` can be one)")
    wide = _widest(cond)
    if wide is not None:
        problems.append(f"{wide[1]} has {wide[0]} items (line {wide[2]}); the engine takes at most {MAX_WIDTH} "
                        "under one condition: split the list")
    values = _values(cond)
    if values > MAX_VALUES:
        problems.append(f"the condition tests {values} values; the engine takes at most {MAX_VALUES} per rule: "
                        "split the rule")
    return problems


def _nesting(node: Any) -> tuple[int, Any]:
    """Levels of all/any (one with a single item adds none: the compiler drops it), and the deepest node."""

    if isinstance(node, (ast.AllOf, ast.AnyOf)):
        best, where = 0, node
        for item in node.items:
            d, w = _nesting(item)
            if d > best:
                best, where = d, w
        return (best + (1 if len(node.items) > 1 else 0), where if best else node)
    if isinstance(node, ast.Not):
        return _nesting(node.item)
    return 0, node


def _widest(node: Any) -> tuple[int, str, int] | None:
    """The first list that is too long for one engine node: (items, where, line)."""

    if isinstance(node, (ast.AllOf, ast.AnyOf)):
        if len(node.items) > MAX_WIDTH:
            return len(node.items), node.path, node.line
        for item in node.items:
            found = _widest(item)
            if found:
                return found
        return None
    if isinstance(node, ast.Not):
        return _widest(node.item)
    checks: tuple[ast.Check, ...] = ()
    if isinstance(node, ast.Props):
        checks = node.checks
    elif isinstance(node, ast.EventIs):
        checks = node.filter.where
    if len(checks) > MAX_WIDTH:
        return len(checks), node.path, node.line
    for check in checks:
        for test in check.tests:
            if test.op in ("in", "not_in") and len(test.value) > MAX_WIDTH:
                return len(test.value), f"{node.path}.{check.name}", node.line
        if len(check.tests) > MAX_WIDTH:
            return len(check.tests), f"{node.path}.{check.name}", node.line
    return None


def _values(node: Any) -> int:
    """An upper bound of the slots the compiler gives the condition (tests of one value share one)."""

    if isinstance(node, (ast.AllOf, ast.AnyOf)):
        return sum(_values(i) for i in node.items)
    if isinstance(node, ast.Not):
        return _values(node.item)
    if isinstance(node, ast.Props):
        return sum(len(c.tests) for c in node.checks)
    if isinstance(node, ast.EventIs):
        return 1 + sum(len(c.tests) for c in node.filter.where)
    return 1
