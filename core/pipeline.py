"""The data path in one place: event in → identity → inbox → engine → decisions → outbox.

`Pipeline.ingest` only writes the inbox (what the receiver calls before it answers). `process_pending`
drains the inbox; each event's evaluation commits in one transaction with the inbox row marked done, so a
crash between events loses nothing and redoes nothing. Timers (absence, delays, relative dates) fire when the
clock passes them: event time during a replay, wall-clock time when live.
"""

from __future__ import annotations

import copy
import logging
import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterable

from . import identity, plugins
from .clock import Clock
from .decide import guards
from .decide.compiler import Program, compile_packs
from .decide.evaluator import Evaluator, Outcome
from .decide.goals import GoalReached
from .decide.matchers import make_matcher
from .decide.state import EntityState
from .decide.trigger import Context, Trigger
from .decide.trust import TrustPolicy
from .language import ast
from .models import MERGE, RECORD_UPDATE, Decision, EntityRef, Event, OutboxItem

from .store.protocols import StoreUnavailable

if TYPE_CHECKING:
    from .store import DueTimer, PendingOrder, Store

log = logging.getLogger("crmrules.pipeline")


@dataclass
class Stats:
    events: int = 0
    duplicates: int = 0
    rejected: int = 0
    timers: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)


class Pipeline:
    def __init__(self, store: Store, packs: list[ast.Pack], matcher: str = "durable", clock: Clock | None = None,
                 trusted_sources: Collection[str] | None = None):
        self.store = store
        self.clock = clock or Clock()
        self.stats = Stats()
        # Which sources are trusted: the one input of every trust verdict (decide/trust.py). By default the
        # sources the loaded plugins declared trusted; an undeclared source is untrusted.
        self.trust = TrustPolicy(plugins.trusted_sources() if trusted_sources is None else trusted_sources)
        # Write-through cache of entity states: this process is the only one that evaluates, so what it saved
        # is what the store holds. Cleared whenever a transaction fails.
        self._cache: OrderedDict[str, EntityState] = OrderedDict()
        self._cache_size = 20000
        # Writes held until the end of the batch's transaction (see `_flush`): states by id, so an entity seen
        # several times in a batch is written once, and decisions/outbox rows in one statement each.
        self._dirty: dict[str, tuple[EntityState, float]] = {}
        self._decisions: list[Any] = []
        self._items: list[Any] = []
        self._items_at: list[float] = []
        self._items_replayed: list[bool] = []
        # True while `replay` runs without `live`: what it decides is recorded as `replayed` (never pushed), and
        # the timers it arms carry the mark, so that a sidecar firing them later pushes nothing either.
        self.replaying = False
        self.rejected: list[str] = []  # events a replay set aside, each with why
        self._identities = identity.IdentityCache()
        self._next_due: float | None = None
        self._next_due_known = False
        self._consent_merged: set[str] = set()  # entities a merge gave new consent fields, to re-check
        self.load(packs, matcher)

    def load(self, packs: list[ast.Pack], matcher: str = "durable") -> None:
        """Swap in new packs; only called with packs that already passed `check`."""

        program = compile_packs(packs)
        self.program: Program = program
        self.evaluator = Evaluator(program, make_matcher(program, matcher))

    # ------------------------------------------------------------------ ingest

    def ingest(self, events: list[Event]) -> list[bool]:
        accepted = self.store.accept_many(events)
        self.stats.duplicates += accepted.count(False)
        return accepted

    # ------------------------------------------------------------------ processing

    def process_pending(self, batch: int = 200, order: PendingOrder = "arrival", advance_timers: bool = False,
                        progress: Callable[[int], None] | None = None) -> int:
        """Evaluate accepted events; `advance_timers` fires timers up to each event's time (replay)."""

        done = 0
        while True:
            items = self.store.pending(batch, order)
            if not items:
                return done
            try:
                with self.store.transaction():
                    for _seq, event in items:
                        if advance_timers:
                            self.advance(event.ts())
                        self._process(event)
                    self._flush()
                    self.store.finish_many([seq for seq, _ in items])
            except BaseException:
                self._forget()
                raise
            done += len(items)
            if progress:
                progress(len(items))

    def advance(self, until: float) -> int:
        """Fire every timer due at or before `until`, in due order; returns how many fired."""

        if not self._next_due_known:
            self._next_due, self._next_due_known = self.store.next_timer_at(), True
        if self._next_due is None or until < self._next_due:
            return 0  # the common case in a replay: nothing is due, and no query is needed
        fired = 0
        while True:
            due = self.store.due_timers(until)
            if not due:
                self._next_due = self.store.next_timer_at()
                return fired
            try:
                with self.store.transaction():
                    for row in due:
                        self.store.delete_timer(row["entity_id"], row["rule_key"], row["key"])
                        self._fire_timer(row)
                        fired += 1
                    self._flush()
            except BaseException:
                self._forget()
                raise
            self.stats.timers += len(due)

    def _forget(self) -> None:
        self._cache.clear()
        self._dirty.clear()
        self._decisions, self._items, self._items_at, self._items_replayed = [], [], [], []
        self._identities.known.clear()
        self._next_due_known = False
        self._consent_merged.clear()

    def _fire_timer(self, row: DueTimer) -> None:
        entity_id = self.store.resolve_alias(row["entity_id"])
        state = self._load(entity_id)
        if state is None:
            return
        trigger = Trigger("timer", f"timer:{row['rule_key']}:{row['key']}:{row['due_at']:.3f}", row["due_at"],
                          rule_key=row["rule_key"], leaf=row["leaf"], payload=row["payload"],
                          trust=self.trust.of_timer(row["payload"].get("event"), state.trusted))
        consent = guards.consent_fields(state.props)
        outcome = self.evaluator.on_timer(self._context(state), trigger)
        self._save(state, outcome, replayed=bool(row["payload"].get(REPLAY_MARK)))
        if guards.consent_fields(state.props) != consent:  # a rule's `set:` changed it
            self._withdraw(state, trigger.id, trigger.ts, event=False)

    def _process(self, event: Event) -> None:
        ts = event.ts()
        placed: identity.Resolved | None = None
        if self.trust.source_trusted(event.source):
            subject_id, _new = identity.resolve(self.store, event.subject, ts, self._merge_states, self._identities)
        else:  # placed by its visitor ids only, never merging (see core/identity.py)
            placed = identity.resolve_untrusted(self.store, event.subject)
            subject_id = placed.entity_id
        loaded = self._load(subject_id)
        state = loaded or EntityState(subject_id, event.subject.kind)
        consent = guards.consent_fields(state.props)
        # The one verdict on this event (decide/trust.py): what it may change here, and what it may unlock.
        trust = self.trust.of_event(event.source, vouched=placed is not None and placed.vouched,
                                    entity_trusted=state.trusted)
        untrusted, guest = not trust.source, trust.guest
        if placed is None:
            state.identities.update(dict(identity.normalise(event.subject)))
            state.trusted = True
        elif not guest:
            state.identities.update(dict(placed.own))
            state.claims.update({k: v for k, v in placed.claims if state.identities.get(k) != v})
        state.seen(ts)
        for ref in event.related:
            if untrusted:
                rel = identity.resolve_untrusted(self.store, ref)
                related_id, is_new = rel.entity_id, rel.is_new
            else:
                related_id, is_new = identity.resolve(self.store, ref, ts, self._merge_states, self._identities)
            state.links[ref.kind] = related_id
            if is_new:
                stub = EntityState(related_id, ref.kind)
                stub.identities.update(dict(identity.normalise(ref)))
                self.store.save_entity(related_id, ref.kind, stub.to_json())
                self._remember(stub)
        changed: set[str] = set()
        if event.type == RECORD_UPDATE and not guest:
            changed = state.apply_properties(event.properties, ts)
        elif event.type == MERGE and event.properties.get("merged_ids") and not untrusted:
            other = EntityRef(kind=event.subject.kind, ids=event.properties["merged_ids"])
            merged_id, _ = identity.resolve(self.store, other, ts, self._merge_states, self._identities)
            if merged_id != subject_id:
                self._merge_states(merged_id, subject_id, into=state)
                self.store.merge_entities(merged_id, subject_id, ts)
                self._identities.known.clear()
        state.record(self.program, event.type, ts, event.id, event.properties)
        state.update_ever(self.program, event.type, ts, event.properties)
        # A late event is judged as of the entity's latest event time: windows still count by event time,
        # and a window that the late event completes is seen now, not lost in the past.
        now = max(ts, state.last_seen or ts)
        trigger = Trigger("event", event.id, now, event.type, event.properties, event_ts=ts, trust=trust)
        outcome = self.evaluator.on_event(self._context(state), trigger, changed)
        self._save(state, outcome, fresh=loaded is None)
        merged = subject_id in self._consent_merged
        if merged or (loaded is not None and guards.consent_fields(state.props) != consent):
            self._consent_merged.discard(subject_id)
            self._withdraw(state, event.id, now)
        self.stats.events += 1

    # ------------------------------------------------------------------ state

    def _load(self, entity_id: str) -> EntityState | None:
        state = self._cache.get(entity_id)
        if state is not None:
            self._cache.move_to_end(entity_id)
            return state
        held = self._dirty.get(entity_id)
        if held is not None:  # left the cache but not yet written
            self._remember(held[0])
            return held[0]
        data = self.store.load_entity(entity_id)
        if not data:
            return None
        state = EntityState.from_json(data)
        self._remember(state)
        return state

    def _remember(self, state: EntityState) -> None:
        self._cache[state.id] = state
        self._cache.move_to_end(state.id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _context(self, state: EntityState) -> Context:
        related = {}
        for kind, rid in state.links.items():
            other = self._load(self.store.resolve_alias(rid))
            if other is not None:
                related[kind] = other
        return Context(state, related)

    def _merge_states(self, from_id: str, into_id: str, into: EntityState | None = None) -> None:
        self._flush()  # the store is about to move rows from one entity to the other: it must hold them all
        src = self._load(from_id)
        dst = into or self._load(into_id)
        if src is None or dst is None:
            return
        consent = guards.consent_fields(dst.props)
        merge_into(dst, src)
        if guards.consent_fields(dst.props) != consent:
            self._consent_merged.add(into_id)
        self._cache.pop(from_id, None)
        if into is None:
            self.store.save_entity(into_id, dst.kind, dst.to_json())

    def _save(self, state: EntityState, outcome: Outcome, fresh: bool = False, replayed: bool = False) -> None:
        now = time.time()
        replayed = replayed or self.replaying
        if replayed:
            for timer in outcome.timers:
                timer.payload[REPLAY_MARK] = True
        if fresh:  # written at once: identity resolution orders entities by when their rows were created
            self._dirty.pop(state.id, None)
            self.store.save_entity(state.id, state.kind, state.to_json())
        else:
            self._dirty[state.id] = (state, now)
        self._remember(state)
        decisions = self._reach_goals(outcome.goals) + outcome.decisions
        if outcome.timers:
            self.store.upsert_timers(outcome.timers)
            earliest = min(t.due_at for t in outcome.timers)
            if self._next_due is None or earliest < self._next_due:
                self._next_due = earliest
        if decisions or outcome.outbox:
            self._decisions += decisions
            self._items += outcome.outbox
            self._items_at += [now] * len(outcome.outbox)
            self._items_replayed += [replayed] * len(outcome.outbox)
        for d in decisions:
            self.stats.decisions[d.outcome] = self.stats.decisions.get(d.outcome, 0) + 1
        for item in outcome.outbox:
            name = item.action.type if item.action.type != "custom" else item.action.name
            self.stats.actions[name] = self.stats.actions.get(name, 0) + 1

    def _reach_goals(self, goals: list[GoalReached]) -> list[Decision]:
        """Cancel what each reached goal's rule still has waiting (timers, pending actions due after the goal);
        the decisions of the goals whose cancel removed something, the only ones recorded (decide/goals.py)."""

        if not goals:
            return []
        removed = {(g.entity_id, g.rule_key): self.store.cancel_timers(g.entity_id, g.rule_key) for g in goals}
        if self._items:
            self._flush()  # cancelling reads the outbox: earlier events' actions must be in it
        for g in goals:
            removed[(g.entity_id, g.rule_key)] += self.store.cancel_pending(g.entity_id, g.rule_key, g.at)
        return [g.decision for g in goals if removed[(g.entity_id, g.rule_key)]]

    # ------------------------------------------------------------------ consent of waiting actions

    def _withdraw(self, state: EntityState, trigger_id: str, at: float, event: bool = True) -> None:
        """The lead's consent changed: cancel the waiting actions (delayed, held by quiet hours) it now forbids,
        with one blocked decision per rule saying so."""

        self._flush()  # the actions decided so far in this batch must be in the outbox to be found
        refused: dict[str, list[tuple[str, str]]] = {}
        for item in self.store.waiting_of(state.id):
            why = guards.consent_refusal(item.action, state.props)
            if why:
                refused.setdefault(item.rule, []).append((item.idempotency_key, why))
        for rule_key, rows in refused.items():
            cancelled = self.store.cancel_waiting([key for key, _ in rows], rows[0][1])
            if not cancelled:
                continue
            reasons = "; ".join(dict.fromkeys(why for _, why in rows))
            waiting = "1 waiting message" if cancelled == 1 else f"{cancelled} waiting messages"
            self._decisions.append(self.evaluator.records.withheld_decision(
                rule_key, self.program.by_key.get(rule_key), state, trigger_id, at,
                f"{reasons}; {waiting} cancelled", "consent", event=event))
            self.stats.decisions["blocked"] = self.stats.decisions.get("blocked", 0) + 1

    def send_check(self, item: OutboxItem) -> str | None:
        """The dispatcher's last look before it pushes a waiting action: why the lead's consent, as it is now,
        forbids it (recorded as a blocked decision; the dispatcher cancels the action), or None.

        Consent changes cancel what waits as they are evaluated (`_withdraw`); this catches what was not
        waiting then: a dead letter retried by an operator, a claim released after a crash, an action queued
        before crmrules re-checked consent. Call it on the thread that evaluates (the worker's)."""

        if not guards.needs_consent(item.action):
            return None
        state = self._load(self.store.resolve_alias(item.entity_id))
        if state is None:
            return None
        why = guards.consent_refusal(item.action, state.props)
        if why:
            decision = self.evaluator.records.withheld_decision(
                item.rule, self.program.by_key.get(item.rule), state, f"send:{item.idempotency_key}",
                self.clock.now(), f"{why}; withheld at send time", "send", event=False)
            self.store.record([decision], [])
        return why

    def _flush(self) -> None:
        """Write what `_save` held back; called inside the batch's transaction, before anything reads it."""

        if self._dirty:
            self.store.save_entities([(s.id, s.kind, s.to_json(), at) for s, at in self._dirty.values()])
            self._dirty.clear()
        if self._decisions or self._items:
            decisions, items, items_at, marks = self._decisions, self._items, self._items_at, self._items_replayed
            self._decisions, self._items, self._items_at, self._items_replayed = [], [], [], []
            self.store.record(decisions, items, items_at, marks if any(marks) else None)

    # ------------------------------------------------------------------ replay

    def replay(self, events: Iterable[Event], until: float | None = None,
               progress: Callable[[int], None] | None = None, live: bool = False) -> Stats:
        """Accept and evaluate events in event-time order, firing timers as event time passes them.

        Without `live`, every action decided (now, or later by a timer the replay armed) is recorded as
        `replayed`: kept to read, never pushed. Each chunk of events is accepted and evaluated in one
        transaction, so a sidecar running on the same store never sees them pending and never evaluates them
        as its own. An event whose evaluation fails is set aside (inbox `rejected`, reason in `self.rejected`)
        and the replay goes on."""

        ordered = sorted(events, key=lambda e: e.ts())  # stable: ties keep the file's order
        before, self.replaying = self.replaying, not live
        try:
            for start in range(0, len(ordered), REPLAY_CHUNK):
                chunk = ordered[start:start + REPLAY_CHUNK]
                saved = copy.deepcopy(self.stats)
                try:
                    self._replay_chunk(chunk)
                except (StoreUnavailable, sqlite3.OperationalError):
                    raise
                except Exception:
                    if len(chunk) == 1:
                        raise
                    self.stats = saved  # the chunk was rolled back: count it again, one event at a time
                    for event in chunk:
                        self._replay_alone(event)
                if progress:
                    progress(len(chunk))
            if until is not None:
                self.advance(until)
        finally:
            self.replaying = before
        return self.stats

    def _replay_chunk(self, chunk: list[Event]) -> None:
        try:
            with self.store.transaction():
                accepted = self.ingest(chunk)
                mine = {(e.source, e.id) for e, ok in zip(chunk, accepted) if ok}
                if not mine:
                    return
                rows = [(seq, e) for seq, e in self.store.pending(self.store.inbox_depth(), "event_time")
                        if (e.source, e.id) in mine]
                for _seq, event in rows:
                    self.advance(event.ts())
                    self._process(event)
                self._flush()
                self.store.finish_many([seq for seq, _ in rows])
        except BaseException:
            self._forget()
            raise

    def _replay_alone(self, event: Event) -> None:
        saved = copy.deepcopy(self.stats)
        try:
            self._replay_chunk([event])
        except (StoreUnavailable, sqlite3.OperationalError):
            raise
        except Exception as exc:
            self.stats = saved
            reason = f"{type(exc).__name__}: {exc}"[:2000]
            log.exception("event %s of %s cannot be evaluated; set aside as rejected in the inbox", event.id,
                          event.source)
            with self.store.transaction():
                self.ingest([event])
                for seq, pending in self.store.pending(self.store.inbox_depth(), "event_time"):
                    if (pending.source, pending.id) == (event.source, event.id):
                        self.store.finish(seq, "rejected", f"cannot be evaluated: {reason}")
            self.stats.rejected += 1
            self.rejected.append(f"event {event.id!r} ({event.type} at {event.occurred_at.isoformat()}) "
                                 f"cannot be evaluated, set aside: {reason}")


REPLAY_CHUNK = 200
"""Events a replay accepts and evaluates per transaction (as many as the worker's batch)."""

REPLAY_MARK = "replay"
"""Key in a timer's payload: a replay armed it, so what it decides when due is recorded as replayed too."""


def merge_into(dst: EntityState, src: EntityState) -> None:
    """Two records turned out to be one person: keep the newest value of each field and all history."""

    for name, value in src.props.items():
        if src.prop_ts.get(name, 0) >= dst.prop_ts.get(name, float("-inf")) or name not in dst.props:
            dst.props[name] = value
            dst.prop_ts[name] = src.prop_ts.get(name, 0)
    dst.tags += [t for t in src.tags if t not in dst.tags]
    dst.score = round(dst.score + src.score, 4)
    if src.score_activity is not None:
        dst.score_activity = max(dst.score_activity or src.score_activity, src.score_activity)
    for etype, rows in src.history.items():
        have = {r[1] for r in dst.history.get(etype, [])}
        dst.history[etype] = sorted(dst.history.get(etype, []) + [r for r in rows if r[1] not in have],
                                    key=lambda r: r[0])
    for key, (count, total, first, last) in src.ever.items():
        c, t, f, la = dst.ever.get(key, [0, 0.0, first, last])
        dst.ever[key] = [c + count, t + total, min(f, first), max(la, last)]
    for rule, times in src.fired.items():
        dst.fired[rule] = sorted(set(dst.fired.get(rule, []) + times))
    dst.messages = sorted(dst.messages + src.messages)
    for k, v in src.links.items():
        dst.links.setdefault(k, v)
    for k, v in src.identities.items():
        dst.identities.setdefault(k, v)
    # claims stay claims (shown, never ids), except those the merged record now owns
    for k, v in src.claims.items():
        dst.claims.setdefault(k, v)
    dst.claims = {k: v for k, v in dst.claims.items() if dst.identities.get(k) != v}
    # a silence is anchored on the last event that started it, whichever record saw it
    for leaf, anchor in src.anchors.items():
        mine = dst.anchors.get(leaf)
        if mine is None or float(mine.get("at") or 0) < float(anchor.get("at") or 0):
            dst.anchors[leaf] = anchor
    dst.trusted = dst.trusted or src.trusted  # a trusted source vouched for one of the two
    for attr, pick in (("first_seen", min), ("last_seen", max)):
        values = [v for v in (getattr(dst, attr), getattr(src, attr)) if v is not None]
        setattr(dst, attr, pick(values) if values else None)
