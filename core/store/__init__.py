"""Where state lives. `open_store` picks the backend from a path or URL; SQLite is the embedded default.

The rest of crmrules talks to the methods of `SQLiteStore` only (inbox, identities, entities, timers,
decisions, outbox, meta), so a server database can implement the same methods and slot in.
"""

from __future__ import annotations

from .sqlite import SQLiteStore, StoreUnavailable

Store = SQLiteStore


def open_store(location: str) -> SQLiteStore:
    """A store at a path (or sqlite:///path); encrypted at rest when CRMRULES_STORE_KEY is set."""

    from ..config import secret

    if location.startswith(("postgres://", "postgresql://")):
        raise NotImplementedError("PostgreSQL is not implemented yet; use a SQLite file path")
    return SQLiteStore(location.removeprefix("sqlite:///"), key=secret("CRMRULES_STORE_KEY"))


__all__ = ["SQLiteStore", "Store", "StoreUnavailable", "open_store"]
