"""Matching a snapshot against compiled rules: durable-rules, and a plain-Python twin.

Both implement `Matcher.match(snapshot, candidates) -> set of rule keys`. The durable-rules one is what runs;
the Python one reads the same compiled JSON with the same null semantics, so the two can be checked against
each other (tests do, on generated rules) and so `explain` can show the value of every part of a condition.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Protocol

import durable.engine as durable

from .compiler import CompiledRule, Program


class Matcher(Protocol):
    def match(self, snapshot: dict[str, Any], candidates: Iterable[CompiledRule]) -> set[str]: ...


class _QuietHost(durable.Host):
    """A Host without its background dispatcher threads.

    We only assert facts and read the fired rules synchronously. The dispatchers are what make
    `delete_state` unsafe and cost CPU for every ruleset; without them evaluate-then-retract is stable.
    """

    def _run(self) -> None:  # noqa: D401 - deliberately does nothing
        return None


class DurableMatcher:
    """Asserts the snapshot as a fact (facts fire every matching rule, events only the first), then retracts it."""

    def __init__(self, program: Program):
        self.program = program
        self._host = _QuietHost()
        self._fired: list[str] = []
        self._names: list[str] = []
        self._ids = itertools.count(1)
        tag = program.version
        definitions = {}
        for i, ruleset in enumerate(program.rulesets):
            name = f"crmrules_{tag}_{i}"
            self._names.append(name)
            definitions[name] = {
                rule_name: {"all": body["all"], "run": self._recorder(rule_name)} for rule_name, body in ruleset.items()
            }
        if definitions:
            self._host.set_rulesets(definitions)
        self._key_of = {f"r{cr.index}": cr.key for cr in program.rules}

    def _recorder(self, rule_name: str):
        fired = self._fired

        def run(_c: Any) -> None:
            fired.append(rule_name)

        return run

    def match(self, snapshot: dict[str, Any], candidates: Iterable[CompiledRule]) -> set[str]:
        candidates = list(candidates)
        if not candidates:
            return set()
        wanted = {cr.key for cr in candidates}
        by_ruleset: dict[int, set[str]] = {}
        for cr in candidates:
            by_ruleset.setdefault(self.program.ruleset_of[cr.key], set()).update(cr.slots)
        matched: set[str] = set()
        for index, slots in by_ruleset.items():
            fact = {slot: snapshot.get(slot) for slot in slots}
            # A fresh id per assert: durable-rules dedups identical facts by content hash otherwise.
            fact["id"] = next(self._ids)
            fact["sid"] = "0"
            name = self._names[index]
            self._fired.clear()
            try:
                self._host.assert_fact(name, fact)
            except durable.MessageNotHandledException:
                continue
            try:
                self._host.retract_fact(name, fact)
            except durable.MessageNotHandledException:
                pass
            matched.update(self._key_of[r] for r in self._fired)
        return matched & wanted


def evaluate_json(condition: dict, snapshot: dict[str, Any]) -> bool:
    """durable-rules' JSON condition semantics in Python.

    As in the engine (found by the property test against it): a comparison with null is false except
    `= null`; booleans compare as 1 and 0 with numbers; a string never equals a number and orders above it.
    """

    if "$and" in condition:
        return all(evaluate_json(c, snapshot) for c in condition["$and"])
    if "$or" in condition:
        return any(evaluate_json(c, snapshot) for c in condition["$or"])
    (key, operand), = condition.items()
    if not key.startswith("$"):
        value = snapshot.get(key)
        if operand is None:
            return value is None
        return value is not None and _compare(value, operand) == 0
    (slot, expected), = operand.items()
    value = snapshot.get(slot)
    if key == "$neq":
        if expected is None:
            return value is not None
        return value is not None and _compare(value, expected) != 0
    if value is None or expected is None:
        return False
    order = _compare(value, expected)
    return {"$gte": order >= 0, "$gt": order > 0, "$lte": order <= 0, "$lt": order < 0}[key]


def _compare(a: Any, b: Any) -> int:
    """-1, 0 or 1 in the engine's order."""

    if isinstance(a, str) != isinstance(b, str):
        return 1 if isinstance(a, str) else -1
    if not isinstance(a, str):
        a, b = float(a), float(b)
    return (a > b) - (a < b)


class PythonMatcher:
    def __init__(self, program: Program):
        self.program = program

    def match(self, snapshot: dict[str, Any], candidates: Iterable[CompiledRule]) -> set[str]:
        return {cr.key for cr in candidates if evaluate_json(cr.json, snapshot)}


def make_matcher(program: Program, kind: str = "durable") -> Matcher:
    if kind == "durable":
        return DurableMatcher(program)
    if kind == "python":
        return PythonMatcher(program)
    raise ValueError(f"unknown matcher {kind!r}; use durable or python")
