"""Per-entity state the host keeps for the engine: properties, event history, tallies, limits.

durable-rules has no event time and caps live sessions at 1,024, so every window, count and last-seen time
lives here, keyed by event time, and is saved with the entity in the store.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from ..language import ast
from .calendar import add_duration
from .compiler import Program, Slot, coerce, tally_key


@dataclass
class EntityState:
    id: str
    kind: str
    props: dict[str, Any] = field(default_factory=dict)
    prop_ts: dict[str, float] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    score: float = 0.0
    score_activity: float | None = None
    score_periods: int = 0
    history: dict[str, list[list[Any]]] = field(default_factory=dict)  # type → [[ts, id, {fields}], ...]
    ever: dict[str, list[float]] = field(default_factory=dict)  # tally key → [count, sum, first, last]
    fired: dict[str, list[float]] = field(default_factory=dict)  # rule key → times it fired
    messages: list[float] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)
    first_seen: float | None = None
    last_seen: float | None = None
    trusted: bool = False  # some event about it came from an authenticated source (a CRM, an import)
    # ids an untrusted source named for it that it may not take (a tracker `identify` claiming a CRM lead's
    # email): kept to show, never linked, merged on or pushed (see core/identity.py)
    claims: dict[str, str] = field(default_factory=dict)
    # quiet (`no: {for:}`) leaf → the last event that started the silence, for its timer's payload
    anchors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "EntityState":
        return cls(**data)

    # ---- properties

    def view(self) -> dict[str, Any]:
        """The properties a rule sees: CRM fields plus the tags and score crmrules keeps."""

        out = dict(self.props)
        out["tags"] = list(self.tags)
        out["score"] = self.score
        return out

    def apply_properties(self, values: dict[str, Any], ts: float) -> set[str]:
        """Apply field values observed at `ts`; an older value never overwrites a newer one."""

        changed = set()
        for name, value in values.items():
            if name in ("tags", "score"):
                continue
            if self.prop_ts.get(name, float("-inf")) > ts:
                continue
            self.prop_ts[name] = ts
            if self.props.get(name) != value:
                self.props[name] = value
                changed.add(name)
        return changed

    def seen(self, ts: float) -> None:
        self.first_seen = ts if self.first_seen is None else min(self.first_seen, ts)
        self.last_seen = ts if self.last_seen is None else max(self.last_seen, ts)

    # ---- history

    def record(self, program: Program, etype: str, ts: float, event_id: str, props: dict[str, Any]) -> None:
        keep = program.tracked_types.get(etype)
        if keep is None:
            return
        wanted = program.tracked_fields.get(etype, ())
        entry = [ts, event_id, {k: props[k] for k in wanted if k in props}]
        rows = self.history.setdefault(etype, [])
        if any(r[1] == event_id for r in rows[-8:]):
            return
        bisect.insort(rows, entry, key=lambda r: r[0])
        horizon = max(r[0] for r in rows[-1:]) - keep
        cut = bisect.bisect_left(rows, horizon, key=lambda r: r[0])
        if cut:
            del rows[:cut]

    def update_ever(self, program: Program, etype: str, ts: float, props: dict[str, Any]) -> None:
        for tally in program.ever_tallies:
            if tally.filter.type == etype and filter_matches(tally.filter, props):
                key = tally_key(tally)
                count, total, first, last = self.ever.get(key, [0, 0.0, ts, ts])
                amount = coerce(props.get(tally.sum_of), "num") if tally.sum_of else 0.0
                self.ever[key] = [count + 1, total + (amount or 0.0), min(first, ts), max(last, ts)]

    def events(self, flt: ast.EventFilter, start: float, end: float) -> list[list[Any]]:
        """History rows of `flt` with start < ts ≤ end."""

        rows = self.history.get(flt.type, [])
        lo = bisect.bisect_right(rows, start, key=lambda r: r[0])
        hi = bisect.bisect_right(rows, end, key=lambda r: r[0])
        return [r for r in rows[lo:hi] if filter_matches(flt, r[2])]

    # ---- limits

    def fired_within(self, rule_key: str, since: float | None) -> list[float]:
        times = self.fired.get(rule_key, [])
        return times if since is None else [t for t in times if t > since]

    def note_fired(self, rule_key: str, ts: float, keep: float | None) -> None:
        times = self.fired.setdefault(rule_key, [])
        times.append(ts)
        if keep is not None and len(times) > 1:
            self.fired[rule_key] = [t for t in times if t > ts - keep]
        elif keep is None and len(times) > 64:
            del times[:-64]

    # ---- score

    def decay(self, rule: ast.Decay | None, now: float) -> bool:
        """Apply whole decay periods up to `now`; returns whether the score changed."""

        if rule is None or self.score_activity is None or self.score <= 0:
            return False
        idle = float(rule.idle or 0)
        elapsed = now - self.score_activity - idle
        periods = int(elapsed // float(rule.every)) if elapsed >= 0 else 0
        new = periods - self.score_periods
        if new <= 0:
            return False
        before = self.score
        for _ in range(min(new, 1000)):
            if rule.points is not None:
                self.score = max(0.0, self.score - rule.points)
            else:
                self.score = round(self.score * (1 - rule.percent / 100.0), 4)
        self.score_periods = periods
        return self.score != before

    def add_score(self, points: float, now: float) -> None:
        self.score = round(self.score + points, 4)
        self.score_activity = now
        self.score_periods = 0


def filter_matches(flt: ast.EventFilter, props: dict[str, Any]) -> bool:
    return all(check_passes(check, props.get(check.name)) for check in flt.where)


def check_passes(check: ast.Check, value: Any, now: float | None = None) -> bool:
    """Plain-Python test of one property; used for history filters, where no snapshot exists."""

    return all(test_passes(t, value, now) for t in check.tests)


def test_passes(test: ast.Test, value: Any, now: float | None = None) -> bool:
    op = test.op
    if op == "missing":
        return value is None or value == ""
    if op == "exists":
        return not (value is None or value == "")
    if op == "contains":
        return contains(value, test.value)
    if op == "func":  # a plugin's condition function; its failure reads as "condition not met"
        _name, function, argument = test.value
        try:
            return bool(function(value, argument))
        except Exception:
            return False
    if op == "matches":
        return value is not None and re.search(test.value, str(value)) is not None
    if op in ("within_next", "within_last", "older_than", "past", "future"):
        delta = date_delta(value, now or 0.0)
        if delta is None:
            return False
        seconds = float(test.value or 0)
        return {"within_next": 0 <= delta <= seconds, "within_last": -seconds <= delta <= 0,
                "older_than": delta <= -seconds, "past": delta < 0, "future": delta > 0}[op]
    if op in ("in", "not_in"):
        found = any(_equal(value, v) for v in test.value)
        return found if op == "in" else not found
    if op == "eq":
        return _equal(value, test.value)
    if op == "neq":
        return not _equal(value, test.value)
    number = coerce(value, "num")
    if number is None:
        return False
    return {"ge": number >= test.value, "gt": number > test.value, "le": number <= test.value, "lt": number < test.value}[op]


def _equal(value: Any, expected: Any) -> bool:
    kind = "bool" if isinstance(expected, bool) else "num" if isinstance(expected, (int, float)) else "str"
    got = coerce(value, kind)
    want = coerce(expected, kind)
    return got is not None and got == want


def contains(value: Any, needle: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, (list, tuple, set)):
        return any(_equal(v, needle) for v in value)
    if isinstance(value, str):
        # HubSpot multi-select values come as "a;b;c": a whole item matches, and so does a substring.
        return str(needle) in value.split(";") or str(needle) in value
    return False


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(value: Any) -> float | None:
    """A CRM date or datetime → epoch seconds; epoch milliseconds (HubSpot) are recognised by size."""

    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value / 1000.0 if value > 10**11 else float(value)
    text = str(value).strip()
    if text.isdigit():
        return parse_time(int(text))
    try:
        if _DATE_ONLY.match(text):
            return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def date_delta(value: Any, now: float) -> float | None:
    when = parse_time(value)
    return None if when is None else when - now


def next_date_flip(slot: Slot, tests: list[ast.Test], value: Any, now: float) -> float | None:
    """When, after `now`, a date test on `value` becomes true: the moment to schedule a timer for."""

    when = parse_time(value)
    if when is None:
        return None
    moments = []
    for test in tests:
        seconds = float(test.value or 0)
        moment = {"within_next": when - seconds, "older_than": when + seconds, "past": when + 0.001,
                  "within_last": when}.get(test.op)
        if moment is not None and moment > now:
            moments.append(moment)
    return min(moments) if moments else None


def due_after(start: float, within: Any, calendar: ast.Calendar) -> float:
    return add_duration(start, within, calendar)
