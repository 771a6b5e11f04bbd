"""Condition parts in the admin's own words, for decisions, `explain` and test failures."""

from __future__ import annotations

from typing import Any

from ..language import ast
from ..language.ast import describe_test
from ..language.durations import format_duration


def _within(duration: Any) -> str:
    if duration is None:
        return "ever"
    return f"within {getattr(duration, 'text', None) or format_duration(float(duration))}"


def describe_leaf(node: Any) -> str:
    if isinstance(node, ast.EventIs):
        return f"event is {node.filter.describe()}"
    if isinstance(node, ast.Props):
        parts = [describe_test(f"{node.scope}.{c.name}", t) for c in node.checks for t in c.tests]
        return " and ".join(parts)
    if isinstance(node, ast.Tally):
        what = f"sum of {node.sum_of} over" if node.sum_of else "count of"
        bounds = []
        if node.at_least is not None:
            bounds.append(f"≥ {node.at_least:g}")
        if node.at_most is not None:
            bounds.append(f"≤ {node.at_most:g}")
        same = f" with the same {', '.join(node.same)}" if node.same else ""
        return f"{what} {node.filter.describe()}{same} {_within(node.within)} {' and '.join(bounds)}"
    if isinstance(node, ast.Sequence):
        steps = " then ".join(s.describe() for s in node.steps)
        return f"{steps} {_within(node.within)}"
    if isinstance(node, ast.Absence):
        if node.quiet_for is not None:
            return f"no {node.filter.describe()} for {_within(node.quiet_for)[7:]}"
        assert node.after is not None  # an absence has `for:` or `after:`
        return f"no {node.filter.describe()} {_within(node.within)} after {node.after.describe()}"
    return repr(node)
