"""Running one case: its records and events replayed through the pack on a fresh SQLite store, in event time
from the case's `start`, and what came out — decisions, the actions they queued with their outbox rows, and
which entity each named record ended up as (after merges: the same one)."""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import identity
from ..clock import ManualClock
from ..models import MERGE, RECORD_UPDATE, Decision, EntityRef, Event, OutboxItem
from ..pipeline import Pipeline
from ..language import ast
from ..store import SQLiteStore
from .shapes import VISITOR_IDS, Case, EventSpec, Record
from .patterns import Happened
from .times import when


@dataclass
class Run:
    """What a case's replay left behind."""

    decisions: list[Decision]
    happened: dict[str, list[Happened]]  # by decision id, in the decision's order of actions
    entities: dict[str, set[str]] = field(default_factory=dict)  # record name → entity ids

    def actions_of(self, decisions: list[Decision]) -> list[Happened]:
        return [h for d in decisions for h in self.happened.get(d.id, [])]


def _ref(record: Record) -> dict[str, Any]:
    return {"kind": record.kind, "ids": record.ids()}


def build_events(case: Case) -> list[Event]:
    """The case as the events a source would send: each given record's fields just before `start`, then the
    case's events. An event is related to the records its record is `with` (the single-record form: to every
    other record of the case), so rules about a lead see its account."""

    records = case.records
    events: list[Event] = []

    def related(name: str | None) -> list[dict[str, Any]]:
        if case.named:
            return [_ref(records[n]) for n in (records[name].links if name else [])]
        kind = records[name].kind if name else "lead"
        return [_ref(r) for r in records.values() if r.given and r.kind != kind]

    before = case.start - dt.timedelta(seconds=1)
    for name, record in records.items():
        if record.given:
            events.append(Event.model_validate({
                "id": f"t{case.index}-given-{name}", "source": record.source, "type": RECORD_UPDATE,
                "occurred_at": before, "subject": _ref(record), "properties": dict(record.fields),
                "related": related(name) if case.named else []}))
    for n, spec in enumerate(case.events):
        events.append(_event(case, spec, n, related(spec.about)))
    return events


def _event(case: Case, spec: EventSpec, n: int, related: list[dict[str, Any]]) -> Event:
    if spec.email is not None:
        subject: dict[str, Any] = {"kind": "lead", "ids": {"email": spec.email}}
    else:
        subject = _ref(case.records[spec.about or ""])
    props = dict(spec.properties)
    if spec.type == MERGE and spec.merged:
        props["merged_ids"] = case.records[spec.merged].ids()
    return Event.model_validate({"id": f"t{case.index}-{n}", "source": spec.source, "type": spec.type,
                                 "occurred_at": spec.at, "subject": subject, "related": related,
                                 "properties": props})


def run_case(case: Case, packs: list[ast.Pack]) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "test.sqlite")
        try:
            pipeline = Pipeline(store, packs, clock=ManualClock(case.start.timestamp()))
            events = build_events(case)
            last = max((e.occurred_at for e in events), default=case.start)
            until = when(last, case.until) if case.until is not None else None
            # live: a case stands for the deployment running live (its own store, that nobody serves)
            pipeline.replay(events, until=until.timestamp() if until else None, live=True)
            decisions = store.all_decisions()
            items: dict[str, list[tuple[OutboxItem, str]]] = {}
            for row in store.outbox_rows(limit=1_000_000):
                item = OutboxItem.model_validate_json(row["body"])
                items.setdefault(item.decision_id, []).append((item, row["status"]))
            entities = {name: _entities(store, record) for name, record in case.records.items()}
        finally:
            store.close()
    return Run(decisions, {d.id: _pair(d, items.get(d.id, [])) for d in decisions}, entities)


def _pair(decision: Decision, items: list[tuple[OutboxItem, str]]) -> list[Happened]:
    """Each action of a decision with the outbox row that carries it (the same action, once each)."""

    free = list(items)
    out = []
    for action in decision.actions:
        found = next((i for i, (item, _) in enumerate(free) if item.action == action), None)
        item, status = free.pop(found) if found is not None else (None, None)
        out.append(Happened(decision, action, item, status))
    return out


def _entities(store: SQLiteStore, record: Record) -> set[str]:
    """The entity a record became: found by its ids (a record from an untrusted source by its visitor ids only,
    as the pipeline places it), through any merge."""

    pairs = identity.normalise(EntityRef.model_validate(_ref(record)))
    if not record.trusted:
        pairs = [p for p in pairs if p[0] in VISITOR_IDS]
    found = store.lookup_links(record.kind, pairs)
    return {store.resolve_alias(entity_id) for entity_id, _ in found.values()}
