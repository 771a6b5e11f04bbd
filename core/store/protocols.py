"""The store's contract: one Protocol per role, and `Store`, all of them together.

Why protocols: SQLite (`sqlite.py`) is the embedded store; a server database (PostgreSQL, several evaluator
processes) is to implement the same surface. Each part of crmrules names the narrowest role it needs
(identity resolution takes `IdentityStore`, the dispatcher `OutboxStore`), so what a part may do to the store
shows in its signature. `tests/store/` is the contract suite every implementation must pass; the docstrings
here say what it pins, and are what an implementer reads.

For every role: times are Unix seconds. A write made outside `transaction()` is atomic and durable when the
call returns; a write the store cannot keep (disk full, read-only, locked too long) raises `StoreUnavailable`
and keeps nothing of that call. Identity values are looked up exactly as given (callers normalise them, see
`identity.normalise`). With an at-rest key (`CRMRULES_STORE_KEY`, see `sealing.py`) an implementation seals
payloads, states, decisions and actions and blinds identity values; nothing observable here changes.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Protocol, Sequence, TypedDict

from ..models import Decision, Event, OutboxItem

if TYPE_CHECKING:
    from ..config import Retention

JSONObject = dict[str, Any]
"""A JSON object as `json.loads` gives it back (entity state, timer payloads): values are any JSON."""

IdPair = tuple[str, str]
"""(id kind, value) of one identity, e.g. ("email", "kim@example.com"), as `identity.normalise` makes it."""

InboxStatus = Literal["pending", "done", "rejected", "pruned"]
"""pending: accepted, not evaluated; done: evaluated; rejected: set aside (its evaluation kept failing);
pruned: done, payload removed by retention, kept as a dedup key only."""

PendingOrder = Literal["arrival", "event_time"]
"""arrival: in accept order; event_time: by the event's `occurred_at`, ties in accept order (replays)."""

OutboxStatus = Literal["pending", "sending", "sent", "dead", "cancelled", "replayed"]
"""pending: waits for its due time; sending: claimed by a dispatcher (lease); sent: pushed; dead: given up on
(a dead letter, retried only by an operator); cancelled: a goal was reached, the lead's consent no longer allows
it, or an operator dropped it; replayed: decided by a replay (`crmrules run` without `--live`), kept to read and
never pushed."""

PRUNE_KINDS = ("inbox_payloads", "inbox_keys", "decisions", "outbox")
"""inbox_payloads: evaluated events' payloads (the row stays as `pruned`, keeping its dedup key);
inbox_keys: those rows themselves; decisions: decision records; outbox: sent, cancelled and replayed actions."""


class StoreUnavailable(Exception):
    """The store cannot take writes (disk full, read-only file): callers answer 503 and keep nothing half-done."""


@dataclass
class Pruned:
    """What one `prune` removed (or, dry, would remove), per kind of row; `more`: it stopped early."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PRUNE_KINDS, 0))
    more: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# ---------------------------------------------------------------------- rows callers read


class DueTimer(TypedDict):
    """A timer that is due, as `TimerStore.due_timers` hands it to the pipeline to fire."""

    entity_id: str
    rule_key: str
    key: str
    due_at: float
    leaf: str
    payload: JSONObject


class WaitingTimer(TypedDict):
    """A timer of one entity, as `explain` lists it."""

    rule_key: str
    key: str
    due_at: float


class OutboxRow(TypedDict):
    """One outbox row as an operator sees it (`crmrules outbox list`); `body` is the `OutboxItem` as JSON."""

    key: str
    rule: str
    entity_id: str
    action_type: str
    status: OutboxStatus
    attempts: int
    due_at: float
    next_at: float
    last_error: str | None
    sent_at: float | None
    body: str


class TimerSpec(Protocol):
    """A timer to arm (`engine.evaluator.Timer` is one): unique per (entity_id, rule_key, key)."""

    @property
    def entity_id(self) -> str: ...
    @property
    def rule_key(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def due_at(self) -> float: ...
    @property
    def leaf(self) -> str: ...
    @property
    def payload(self) -> JSONObject: ...


# ---------------------------------------------------------------------- roles


class InboxStore(Protocol):
    """Accepted events, each (source, event id) once, waiting for and after evaluation."""

    def accept_many(self, events: Sequence[Event], received_at: float | None = None) -> list[bool]:
        """Keep new events as pending, all or none; per event True if new, False if its (source, id) is known
        (a redelivery: also a repeat within `events`), whatever that row's status, until retention drops its key.
        `received_at` defaults to now."""
        ...

    def pending(self, limit: int = 100, order: PendingOrder = "arrival") -> list[tuple[int, Event]]:
        """Up to `limit` pending events with their seq (increasing in accept order); reading claims nothing."""
        ...

    def finish(self, seq: int, status: Literal["done", "rejected"] = "done", error: str | None = None) -> None:
        """Move one event out of pending (`rejected` keeps `error` for the operator); an unknown seq is a no-op."""
        ...

    def finish_many(self, seqs: Sequence[int]) -> None:
        """Mark these events done, in one write."""
        ...

    def inbox_depth(self) -> int:
        """How many events are pending; called on every metrics scrape, so it must be cheap."""
        ...

    def inbox_counts(self) -> dict[str, int]:
        """Rows per `InboxStatus` that has any (absent statuses are missing, not 0)."""
        ...

    def events_of(self, entity_id: str) -> list[Event]:
        """Done events (payload still kept) whose subject or a related record carries an id linked to this entity
        or to one merged into it (same entity kind; emails compared lowercased), in event time, ties in accept
        order; pending and rejected events never."""
        ...


class IdentityStore(Protocol):
    """Which entity an id belongs to: links (id → entity, trusted or not), entity ids and their order, merges.

    Everything identity resolution (`core/identity.py`) needs, so it takes this role alone."""

    def lookup_links(self, entity_kind: str, pairs: Sequence[IdPair]) -> dict[IdPair, tuple[str, bool]]:
        """For each pair that is linked: (entity id as linked, whether a trusted source made the link); unlinked
        pairs are missing. Aliases are not followed here (`merge_entities` repoints links; callers resolve)."""
        ...

    def link(self, entity_kind: str, pairs: Sequence[IdPair], entity_id: str, trusted: bool = True) -> None:
        """Point ids at an entity: a trusted link replaces whatever the id pointed at (and becomes trusted); an
        untrusted one only takes ids that nobody has, leaving existing links as they are."""
        ...

    def new_entity_id(self, kind: str) -> str:
        """A fresh id for an entity of `kind`, never returned before; reserves nothing (it exists once saved)."""
        ...

    def entity_created_seq(self, entity_id: str) -> int:
        """Sorts entities by when each was first saved (a later save keeps it); an unsaved id sorts after all.
        The oldest of entities found to be one survives a merge, so this order must never change."""
        ...

    def merge_entities(self, from_id: str, into_id: str, at: float) -> None:
        """Atomically move everything of `from_id` to `into_id`: its links, timers (where `into_id` has the same
        (rule, key) the survivor's wins), decisions and outbox rows; delete its state; make it and whatever was
        merged into it aliases of `into_id`. The caller merges the two states itself."""
        ...

    def resolve_alias(self, entity_id: str) -> str:
        """The entity `entity_id` was merged into (following merges of merges), else `entity_id` itself."""
        ...


class EntityStore(Protocol):
    """Each entity's state (`EntityState.to_json()`), by id, with its kind; creation order is kept."""

    def load_entity(self, entity_id: str) -> JSONObject | None:
        """The state last saved for this id, equal to what was saved; None if never saved or merged away."""
        ...

    def save_entity(self, entity_id: str, kind: str, state: JSONObject) -> None:
        """Insert or replace one entity's state: the last write wins, its creation order stays."""
        ...

    def save_entities(self, rows: Sequence[tuple[str, str, JSONObject, float]]) -> None:
        """`save_entity` for many, (id, kind, state, updated_at) each, in one write; all or none."""
        ...

    def entities(self, kind: str | None = None) -> list[tuple[str, str, JSONObject]]:
        """(id, kind, state) of every entity (of `kind`), in creation order."""
        ...

    def find_entity(self, text: str) -> str | None:
        """An entity for an operator's text: its id, else any linked identity value (also lowercased; a trusted
        link before an untrusted one, a claim last), else its `name` property or display name; None if none."""
        ...


class TimerStore(Protocol):
    """Timers waiting to fire (absence, delays, relative dates), unique per (entity, rule key, key)."""

    def upsert_timers(self, timers: Sequence[TimerSpec]) -> None:
        """Arm timers in one write; re-arming an existing (entity, rule key, key) replaces its due time, leaf and
        payload (never a second timer)."""
        ...

    def due_timers(self, until: float, limit: int = 500) -> list[DueTimer]:
        """Up to `limit` timers due at or before `until`, by due time, then entity, rule key, key; reading does
        not remove them (`delete_timer` does, in the transaction that fires them)."""
        ...

    def next_timer_at(self) -> float | None:
        """The earliest due time of any waiting timer; None when none waits."""
        ...

    def delete_timer(self, entity_id: str, rule_key: str, key: str) -> None:
        """Remove one timer (it fired); removing one that is gone is a no-op."""
        ...

    def cancel_timers(self, entity_id: str, rule_key: str) -> int:
        """Remove every timer of a rule for an entity; how many there were (0: nothing was waiting)."""
        ...

    def timers_of(self, entity_id: str) -> list[WaitingTimer]:
        """This entity's waiting timers, by due time."""
        ...


class DecisionStore(Protocol):
    """The audit trail of decisions, written together with the actions they queue."""

    def record(self, decisions: Sequence[Decision], items: Sequence[OutboxItem],
               created_at: Sequence[float] | None = None, replayed: Sequence[bool] | None = None) -> int:
        """Keep decisions and queue their actions as pending, in one write; returns how many outbox rows are new.

        An item marked in `replayed` (a replay decided it, `crmrules run` without `--live`) is kept as a
        `replayed` row instead: shown, cancelled by a goal like a pending one, pruned like a sent one, and never
        claimed for pushing.

        Insert, never replace: a decision id or an idempotency key already stored keeps its row untouched (a
        sent action stays sent, a replay pushes nothing twice). `created_at` gives each item's decision time
        (default now); retention ages outbox rows by it."""
        ...

    def decisions_of(self, entity_id: str) -> list[Decision]:
        """This entity's decisions (those of records merged into it included), by `at`, ties in record order."""
        ...

    def all_decisions(self) -> list[Decision]:
        """Every decision kept, by `at`, ties in record order."""
        ...


class OutboxStore(Protocol):
    """Actions waiting to be pushed, by idempotency key: claims with a lease, retries, dead letters."""

    def cancel_pending(self, entity_id: str, rule_key: str, after: float) -> int:
        """Cancel a rule's pending (and replayed) actions for an entity that are due after `after` (a goal was
        reached); how many. Sending, sent and dead rows are left alone."""
        ...

    def waiting_of(self, entity_id: str) -> list[OutboxItem]:
        """This entity's pending (and replayed) actions (not yet claimed), by due time: what a change of its consent re-checks."""
        ...

    def cancel_waiting(self, keys: Sequence[str], reason: str) -> int:
        """Cancel those of these actions that are still pending (or replayed), with `reason` as their last error (the lead's
        consent no longer allows them); how many. Sending, sent, dead and cancelled rows are left alone."""
        ...

    def claim_due(self, now: float, limit: int = 50, lease: float = 60.0,
                  owner: str | None = None) -> list[tuple[OutboxItem, int]]:
        """Atomically take up to `limit` actions due at `now` (pending, or sending with an expired lease),
        earliest `next_at` first, as `owner`; each with its attempts so far. A taken row is `sending` until
        `now + lease`: no other claim (from any process) gets it before then, and anyone may take it after."""
        ...

    def claimants(self) -> list[str | None]:
        """The distinct owners of actions now `sending` (None: claimed without an owner)."""
        ...

    def release_claims(self, owner: str, now: float, reason: str) -> int:
        """Make the actions `owner` is sending pending again, due at `now` at the latest, with `reason` as their
        last error (its process is gone); not counted as an attempt. How many."""
        ...

    def mark_sent(self, key: str, result: str = "") -> None:
        """The push succeeded: sent (no longer claimed), one more attempt, `result` kept, last error cleared."""
        ...

    def mark_retry(self, key: str, next_at: float, error: str) -> None:
        """The push failed for now: pending (no longer claimed), due at `next_at`, one more attempt, `error` kept."""
        ...

    def mark_dead(self, key: str, error: str) -> None:
        """The push cannot succeed: a dead letter (never claimed again by itself), one more attempt, `error` kept."""
        ...

    def mark_cancelled(self, key: str, reason: str) -> None:
        """A claimed action may no longer go (its lead opted out since it was decided): cancelled before any
        push, no attempt counted, `reason` kept as its last error."""
        ...

    def outbox_rows(self, status: OutboxStatus | None = None, limit: int = 1000) -> list[OutboxRow]:
        """Up to `limit` rows (of `status`), by creation time, then key."""
        ...

    def outbox_counts(self) -> dict[str, int]:
        """Rows per `OutboxStatus` that has any (absent statuses are missing, not 0)."""
        ...

    def retry_dead(self, key: str | None = None) -> int:
        """Dead letters (one by full key, or all) become pending, due now, attempts reset; how many."""
        ...

    def drop(self, key: str) -> int:
        """An operator gives up on one pending or dead action: cancelled; 1, or 0 if no such row."""
        ...


class RetentionStore(Protocol):
    """Removal of what only the audit trail and `explain` read, once `retention` no longer keeps it."""

    def prune(self, retention: Retention, now: float | None = None, *, dry_run: bool = False,
              batch: int | None = None, max_batches: int | None = None, pause: float = 0.0,
              should_stop: Callable[[], bool] | None = None) -> Pruned:
        """Delete, oldest first, in writes of `batch` rows (default `retention.batch`): done events' payloads
        (`received_at` older than `retention.events`; the key stays as `pruned`), then those keys (older than
        `retention.key_horizon`), decisions (by `at`) unless one of their actions is pending, sending or dead,
        sent and cancelled actions (by `next_at` and creation time both). Never: pending or rejected events, pending,
        sending or dead actions, timers, entities, identities, merges, meta. A `None` horizon keeps that kind.
        `max_batches` or `should_stop()` stop it early with `more` set; `dry_run` counts and changes nothing."""
        ...


class MetaStore(Protocol):
    """Small named values the sidecar keeps (pull cursors, the readiness probe's write)."""

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """The value last set for `key`, else `default`."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Set (replace) one value."""
        ...


class TransactionStore(Protocol):
    """Grouping writes of any role so they commit together."""

    def transaction(self) -> AbstractContextManager[object]:
        """Everything written inside commits at the end, or nothing when the block raises (the exception goes
        on); nested calls join the outer one. It belongs to the calling thread, whose reads inside see its
        writes; others see them once committed. A commit the store cannot make raises `StoreUnavailable`. The
        entered value is the implementation's own; callers ignore it."""
        ...


class Store(InboxStore, IdentityStore, EntityStore, TimerStore, DecisionStore, OutboxStore, RetentionStore,
            MetaStore, TransactionStore, Protocol):
    """The whole store, as `open_store` returns it; one instance is shared by the threads of a process."""

    def close(self) -> None:
        """Release connections (of every thread); the instance is not used afterwards."""
        ...
