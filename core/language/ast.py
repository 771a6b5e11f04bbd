"""The parsed form of a rule pack: what the compiler and the evaluator work from.

Plain frozen dataclasses: the YAML is checked once, by `parser.py` and its modules, and nothing downstream
re-validates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Union

from .durations import Duration

if TYPE_CHECKING:
    from ..actions import ActionType


@dataclass(frozen=True)
class Test:
    """One comparison of a value: op is eq, neq, in, not_in, contains, matches, ge, gt, le, lt,
    missing, exists, within_next, within_last, older_than, past, future."""

    op: str
    value: Any = None


@dataclass(frozen=True)
class Check:
    """Tests on one named property of a scope (event, lead, account, deal)."""

    scope: str
    name: str
    tests: tuple[Test, ...]


@dataclass(frozen=True)
class EventFilter:
    type: str
    where: tuple[Check, ...] = ()

    def describe(self) -> str:
        if not self.where:
            return self.type
        parts = []
        for check in self.where:
            for test in check.tests:
                parts.append(describe_test(check.name, test))
        return f"{self.type} where {', '.join(parts)}"


@dataclass(frozen=True)
class Node:
    path: str
    line: int


@dataclass(frozen=True)
class AllOf(Node):
    items: tuple["Condition", ...]


@dataclass(frozen=True)
class AnyOf(Node):
    items: tuple["Condition", ...]


@dataclass(frozen=True)
class Not(Node):
    item: "Condition"


@dataclass(frozen=True)
class EventIs(Node):
    """The event being evaluated is of this type (and passes `where`)."""

    filter: EventFilter


@dataclass(frozen=True)
class Tally(Node):
    """Count (or sum of `field`) of matching events in the last `within` of event time; `None` = ever.
    With `same`, counted per value of those event properties ("3 views of one product"), not in total."""

    filter: EventFilter
    within: Duration | None
    at_least: float | None
    at_most: float | None
    sum_of: str | None = None
    same: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sequence(Node):
    """Steps happened in this order, the last within `within` of the first, sharing the `same` fields."""

    steps: tuple[EventFilter, ...]
    within: Duration
    same: tuple[str, ...] = ()


@dataclass(frozen=True)
class Absence(Node):
    """No `filter` event within `within` after an `after` event, or none at all for `quiet_for`."""

    filter: EventFilter
    after: EventFilter | None
    within: Duration | None
    quiet_for: Duration | None
    same: tuple[str, ...] = ()


@dataclass(frozen=True)
class Props(Node):
    """Tests on the current properties of the lead, its account or deal."""

    scope: str
    checks: tuple[Check, ...]


Condition = Union[AllOf, AnyOf, Not, EventIs, Tally, Sequence, Absence, Props]


@dataclass(frozen=True)
class ActionSpec:
    """One `then:` item; string fields may hold {{ templates }} rendered at decision time."""

    kind: str
    fields: dict[str, Any]
    after: Duration | None
    path: str
    line: int
    action: ActionType  # the table's entry for `kind`: how the decide stage builds it, how tests match it


@dataclass(frozen=True)
class Limit:
    """How often a rule may fire for one entity: `times` per `per` seconds; times None = every time."""

    times: int | None
    per: Duration | None
    text: str

    def describe(self) -> str:
        return self.text


EVERY_TIME = Limit(None, None, "every time")
ONCE = Limit(1, None, "once per lead")


@dataclass(frozen=True)
class PerKey:
    """`per:` — limits and cooldowns count per value of this property (an event's, or a record's with a scope):
    `per: ticket_id` makes `once` mean once per ticket of the lead."""

    scope: str  # event | lead | account | deal
    name: str
    text: str


@dataclass(frozen=True)
class Rule:
    id: str
    pack: str
    about: str
    description: str
    owner: str
    mode: str  # enabled | disabled | shadow
    priority: int
    group: str | None
    when: Condition
    then: tuple[ActionSpec, ...]
    limit: Limit
    cooldown: Duration | None
    goal: Condition | None
    version: str
    file: str
    line: int
    per: PerKey | None = None


@dataclass(frozen=True)
class Template:
    subject: str
    body: str
    file: str


@dataclass(frozen=True)
class Calendar:
    """Business hours, for `bh` durations and SLAs."""

    timezone: str = "UTC"
    days: tuple[int, ...] = (0, 1, 2, 3, 4)
    start: dt.time = dt.time(9, 0)
    end: dt.time = dt.time(18, 0)


@dataclass(frozen=True)
class QuietHours:
    start: dt.time
    end: dt.time
    timezone: str


@dataclass(frozen=True)
class MessagePolicy:
    max_per_person: int | None = None
    per: Duration | None = None
    quiet_hours: QuietHours | None = None


@dataclass(frozen=True)
class Decay:
    points: float | None
    percent: float | None
    every: Duration
    idle: Duration | None


@dataclass
class Pack:
    name: str
    path: str
    description: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    templates: dict[tuple[str, str], Template] = field(default_factory=dict)
    calendar: Calendar = field(default_factory=Calendar)
    messages: MessagePolicy = field(default_factory=MessagePolicy)
    decay: Decay | None = None
    default_locale: str = "ko"


def describe_test(name: str, test: Test) -> str:
    symbols = {"eq": "=", "neq": "≠", "ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    if test.op in symbols:
        return f"{name} {symbols[test.op]} {test.value!r}"
    if test.op in ("missing", "exists", "past", "future"):
        return f"{name} {test.op}"
    value = test.value.text if isinstance(test.value, Duration) else test.value
    return f"{name} {test.op.replace('_', ' ')} {value!r}"


def walk(condition: Condition) -> Iterator[Condition]:
    """Every node of a condition tree, depth first."""

    yield condition
    if isinstance(condition, (AllOf, AnyOf)):
        for item in condition.items:
            yield from walk(item)
    elif isinstance(condition, Not):
        yield from walk(condition.item)
