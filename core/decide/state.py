"""Per-entity state the host keeps for the engine: properties, event history, tallies, limits.

durable-rules has no event time and caps live sessions at 1,024, so every window, count and last-seen time
lives here, keyed by event time, and is saved with the entity in the store. The pipeline applies what an event
says (fields, history, ids); inside the decide stage only the evaluator changes a state, through the methods
below (`decay`, `note_fired`, `apply_action`, `note_message`), so every change a decision makes is in one place.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from ..language import ast
from ..models import Action
from .compiler import Program, coerce, tally_key
from .predicates import filter_matches


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
                assert rule.percent is not None  # a decay takes points or a percent
                self.score = round(self.score * (1 - rule.percent / 100.0), 4)
        self.score_periods = periods
        return self.score != before

    def add_score(self, points: float, now: float) -> None:
        self.score = round(self.score + points, 4)
        self.score_activity = now
        self.score_periods = 0

    # ---- what a fired rule changes

    def apply_action(self, action: Action, now: float) -> set[str]:
        """A `score`, `tag`, `untag` or `set` action applied here, so later rules see it; the names it changed."""

        if action.type == "score":
            self.add_score(action.points, now)
            return {"score"}
        if action.type == "tag":
            if action.tag not in self.tags:
                self.tags.append(action.tag)
                return {"tags"}
            return set()
        if action.type == "untag":
            if action.tag in self.tags:
                self.tags.remove(action.tag)
                return {"tags"}
            return set()
        if action.type != "set":
            return set()
        changed = set()
        for name, value in action.properties.items():
            if self.props.get(name) != value:
                self.props[name] = value
                self.prop_ts[name] = now
                changed.add(name)
        return changed

    def note_message(self, now: float) -> None:
        """A message was decided: it counts towards the pack's per-person cap."""

        self.messages.append(now)
