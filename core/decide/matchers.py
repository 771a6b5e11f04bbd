"""Matching a snapshot against compiled rules: durable-rules, and a plain-Python twin.

Both implement `Matcher.match(snapshot, candidates) -> set of rule keys`. The durable-rules one is what runs;
the Python one reads the same compiled JSON with the same null semantics, so the two can be checked against
each other (tests do, on generated rules) and so `explain` can show the value of every part of a condition.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Iterable, Protocol

import durable.engine as durable
import durable_rules_engine as _engine  # type: ignore[import-not-found]  # durable-rules' C extension: no stubs

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
    """Asserts the snapshot as a fact (facts fire every matching rule, events only the first), then retracts it.

    The rulesets are built through durable-rules' `Host`, but facts go to its engine module directly: the
    Host's action layer (a `Closure` per fired rule, the session state parsed and written back around each
    action) exists for user code in actions, and ours only notes the rule's name. The engine still does all of
    the matching; we start, read and complete each action it queues, exactly as the Host does, minus the state
    round trip that our actions never change.
    """

    def __init__(self, program: Program):
        self.program = program
        self._host = _QuietHost()
        self._names: list[str] = []
        self._handles: list[int] = []
        self._ids = itertools.count(1)
        tag = program.version
        definitions = {}
        for i, ruleset in enumerate(program.rulesets):
            name = f"crmrules_{tag}_{i}"
            self._names.append(name)
            definitions[name] = {rule_name: {"all": body["all"], "run": _noop} for rule_name, body in ruleset.items()}
        if definitions:
            self._host.set_rulesets(definitions)
        self._handles = [self._host.get_ruleset(name)._handle for name in self._names]
        self._key_of = {f"r{cr.index}": cr.key for cr in program.rules}
        # per candidate set (a tuple of keys, the same for most events of one type): slots by ruleset
        self._plans: dict[tuple[str, ...], list[tuple[int, tuple[str, ...]]]] = {}

    def _plan(self, candidates: list[CompiledRule]) -> list[tuple[int, tuple[str, ...]]]:
        key = tuple(cr.key for cr in candidates)
        plan = self._plans.get(key)
        if plan is None:
            by_ruleset: dict[int, set[str]] = {}
            for cr in candidates:
                by_ruleset.setdefault(self.program.ruleset_of[cr.key], set()).update(cr.slots)
            plan = [(index, tuple(sorted(slots))) for index, slots in by_ruleset.items()]
            if len(self._plans) > 4096:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def _fire(self, handle: int, result: tuple[int, int], text: str, fired: list[str]) -> bool:
        """Drain the actions an assert or retract queued; False when the engine did not handle the message."""

        code, state = result
        if code == 1:
            return False
        if code == 2:
            raise durable.MessageObservedException(text)
        if code == 3:
            state = 0
        action = _engine.start_action_for_state(handle, state)
        if not action:
            return True
        message = action[1]
        while message:
            fired.extend(json.loads(message))
            message = _engine.complete_and_start_action(handle, state)
        return True

    def match(self, snapshot: dict[str, Any], candidates: Iterable[CompiledRule]) -> set[str]:
        candidates = list(candidates)
        if not candidates:
            return set()
        wanted = {cr.key for cr in candidates}
        matched: set[str] = set()
        fired: list[str] = []
        for index, slots in self._plan(candidates):
            fact = {slot: snapshot.get(slot) for slot in slots}
            # A fresh id per assert: durable-rules dedups identical facts by content hash otherwise.
            fact["id"] = next(self._ids)
            fact["sid"] = "0"
            text = json.dumps(fact, ensure_ascii=False)
            handle = self._handles[index]
            fired.clear()
            if not self._fire(handle, _engine.assert_fact(handle, text), text, fired):
                continue
            self._fire(handle, _engine.retract_fact(handle, text), text, fired)
            matched.update(self._key_of[r] for r in fired)
        return matched & wanted


def _noop(_c: Any) -> None:
    return None


def evaluate_json(condition: dict[str, Any], snapshot: dict[str, Any]) -> bool:
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
    return int(a > b) - int(a < b)


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
