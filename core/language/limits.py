"""What the matching engine can take, checked when a pack is loaded — so `crmrules check` says it, not `run`.

Found by experiment against durable-rules 2.0.28 (`create_ruleset` with conditions built to size):
- one rule's condition may hold at most 15 `$and`/`$or` nodes: 16 (a chain 16 deep, one `$or` of 15 `$and`s, a
  full binary tree 5 deep) is refused with "Could not create ruleset, error code: 113", which stops `run` and
  `serve`. Depth itself is not the limit; the number of nodes is.
- more than about 511 tests under one node makes creating the ruleset hang (510 works, 520 hangs).
- a fact takes at most 254 properties; the compiler gives each value a rule tests a slot and cuts rulesets at
  240 slots, so one rule may test at most 240 values.
The condition is measured as the compiler builds it (`decide.compiler.engine_condition`): `all`/`any` with
more than one item, a mapping of several properties, several tests of one property, `in` lists, and `not`
pushed down to the leaves (`not: {x: 1}` is "x ≠ 1 or x unknown") each make a node.
"""

from __future__ import annotations

from typing import Any

from . import ast

MAX_NODES = 15
MAX_WIDTH = 500
MAX_VALUES = 240


def engine_problems(cond: ast.Condition) -> list[str]:
    """Sentences for each engine limit `when:` goes over (empty when it fits)."""

    from ..decide.compiler import engine_condition  # the compiler's own measure, not a copy of it

    compiled, values = engine_condition(cond)
    nodes, widest = _measure(compiled)
    problems: list[str] = []
    if nodes > MAX_NODES:
        problems.append(f"the condition makes {nodes} and/or nodes in the engine, which takes at most {MAX_NODES} "
                        "per rule (`all`/`any`, several properties or tests in one mapping, `in` and `not` each "
                        "make some): split the rule, e.g. one rule that tags or sets what another tests")
    if widest > MAX_WIDTH:
        problems.append(f"the condition has {widest} tests under one and/or; the engine takes at most {MAX_WIDTH}: "
                        "split the list")
    if values > MAX_VALUES:
        problems.append(f"the condition tests {values} values; the engine takes at most {MAX_VALUES} per rule: "
                        "split the rule")
    return problems


def _measure(node: Any) -> tuple[int, int]:
    """(number of $and/$or nodes, most items under one of them) of durable-rules' JSON."""

    nodes, widest = 0, 0
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in ("$and", "$or") and isinstance(value, list):
                    nodes += 1
                    widest = max(widest, len(value))
                    stack += value
    return nodes, widest
