"""The shapes a test file is read into (`cases.py` reads them, `run.py` replays them, `verdict.py` judges)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ..language import RuleError
from .. import plugins
from ..models import ENTITY_KINDS
from .patterns import ActionPattern

CASE_KEYS = ("name", "lead", "account", "deal", "records", "start", "events", "until", "expect", "expect_not",
             "expect_no_actions", "vars")
EXPECT_KEYS = ("rule", "outcome", "reason_contains", "times", "about", "actions", "actions_not")
RECORD_KEYS = ("lead", "account", "deal", "with", "source")
EVENT_KEYS = ("at", "event", "update", "merge", "into", "about", "lead", "source", "properties")
OUTCOMES = ("fired", "blocked", "shadow")
ID_FIELDS = ("email", "hubspot_id", "salesforce_id", "anonymous_id", "user_id", "id")
VISITOR_IDS = ("anonymous_id", "user_id")
TRUSTED_SOURCE = "test"

Mark = tuple[int, int]


@dataclass
class Record:
    """One lead, account or deal a case starts with; `given`: its fields are sent before the first event."""

    name: str
    kind: str
    fields: dict[str, Any]
    links: list[str] = field(default_factory=list)  # `with:`: records its events are related to
    source: str = TRUSTED_SOURCE
    given: bool = True

    @property
    def trusted(self) -> bool:
        """As the pipeline judges it: only a source its plugin declared trusted (the core's `test` is)."""

        return self.source in plugins.trusted_sources()

    def ids(self) -> dict[str, str]:
        found = {k: str(v).strip() for k, v in self.fields.items()
                 if k in ID_FIELDS and v is not None and str(v).strip()}
        return found or {"email": f"{self.name if self.name not in ENTITY_KINDS else self.kind}@test.invalid"}


@dataclass
class EventSpec:
    at: dt.datetime
    type: str  # an event type, `record_update` (update:) or `merge`
    about: str | None  # a record's name; None with `email`
    properties: dict[str, Any]
    source: str
    email: str | None = None  # a lead known only by this email (`lead: someone@example.com`)
    merged: str | None = None  # merge: the record merged into `about`


@dataclass
class Expectation:
    rule: str
    outcome: str = "fired"
    reason: str | None = None
    times: int | None = None
    about: str | None = None
    actions: list[ActionPattern] = field(default_factory=list)
    actions_not: list[ActionPattern] = field(default_factory=list)
    line: int = 0


@dataclass
class Case:
    file: str
    line: int
    index: int
    name: str
    start: dt.datetime
    records: dict[str, Record] = field(default_factory=dict)
    named: bool = False  # the `records:` form: events and expectations name records
    events: list[EventSpec] = field(default_factory=list)
    until: Any = None
    expect: list[Expectation] = field(default_factory=list)
    nothing: bool = False  # `expect: nothing`
    expect_not: list[str] = field(default_factory=list)
    no_actions: list[ActionPattern] = field(default_factory=list)
    no_actions_at_all: bool = False
    vars: dict[str, Any] = field(default_factory=dict)
    vars_mark: Mark = (0, 0)


@dataclass
class TestFile:
    path: str
    cases: list[Case] = field(default_factory=list)
    broken: list[tuple[str, int, list[RuleError]]] = field(default_factory=list)  # (case name, line, errors)
    errors: list[RuleError] = field(default_factory=list)  # the file itself: not YAML, no `tests:`

    def all_errors(self) -> list[RuleError]:
        return self.errors + [e for _, _, errors in self.broken for e in errors]
