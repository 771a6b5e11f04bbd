"""Where state lives. `open_store` picks the implementation from a path or URL; SQLite is the embedded default.

The rest of crmrules talks to the store through the role protocols of `protocols.py` (inbox, identities,
entities, timers, decisions, outbox, retention, meta, transactions; `Store` is all of them), so a server
database implements those and passes the contract suite in tests/store/ to slot in.
"""

from __future__ import annotations

from .protocols import (PRUNE_KINDS, DecisionStore, DueTimer, EntityStore, IdentityStore, IdPair, InboxStatus,
                        InboxStore, JSONObject, MetaStore, OutboxRow, OutboxStatus, OutboxStore, PendingOrder,
                        Pruned, RetentionStore, Store, StoreUnavailable, TimerSpec, TimerStore,
                        TransactionStore, WaitingTimer)
from .sqlite import SQLiteStore


def open_store(location: str) -> Store:
    """A store at a path (or sqlite:///path); encrypted at rest when CRMRULES_STORE_KEY is set."""

    from ..config import secret

    if location.startswith(("postgres://", "postgresql://")):
        raise NotImplementedError("PostgreSQL is not implemented yet; use a SQLite file path")
    return SQLiteStore(location.removeprefix("sqlite:///"), key=secret("CRMRULES_STORE_KEY"))


__all__ = ["PRUNE_KINDS", "DecisionStore", "DueTimer", "EntityStore", "IdPair", "IdentityStore", "InboxStatus",
           "InboxStore", "JSONObject", "MetaStore", "OutboxRow", "OutboxStatus", "OutboxStore", "PendingOrder",
           "Pruned", "RetentionStore", "SQLiteStore", "Store", "StoreUnavailable", "TimerSpec", "TimerStore",
           "TransactionStore", "WaitingTimer", "open_store"]
