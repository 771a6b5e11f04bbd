"""Identity: every id a source knows (email, CRM ids, web anonymous id) lands on one entity.

When one event names ids that belong to two entities (an anonymous visitor who identifies, a CRM merge),
the two become one: the older entity survives, the other's ids, timers, decisions and state move to it.
"""

from __future__ import annotations

from typing import Any, Callable

from .models import EntityRef


def normalise(ref: EntityRef) -> list[tuple[str, str]]:
    return [(k, v.strip().lower() if k == "email" else v.strip()) for k, v in sorted(ref.ids.items())]


class IdentityCache:
    """Remembers (kind, id kind, value) → entity for the evaluating process; forgotten on any merge."""

    def __init__(self, size: int = 50000):
        self.size = size
        self.known: dict[tuple[str, str, str], str] = {}

    def get(self, kind: str, pairs: list[tuple[str, str]]) -> str | None:
        owners = {self.known.get((kind, k, v)) for k, v in pairs}
        return owners.pop() if len(owners) == 1 else None

    def put(self, kind: str, pairs: list[tuple[str, str]], entity_id: str) -> None:
        if len(self.known) > self.size:
            self.known.clear()
        for k, v in pairs:
            self.known[(kind, k, v)] = entity_id


def resolve(store: Any, ref: EntityRef, at: float,
            merge_states: Callable[[str, str], None], cache: IdentityCache | None = None) -> tuple[str, bool]:
    """The entity id for `ref` (created if new); merges entities the ids show to be one. Returns (id, is_new)."""

    pairs = normalise(ref)
    if cache is not None:
        hit = cache.get(ref.kind, pairs)
        if hit is not None:
            return hit, False
    entity_id, is_new = _resolve(store, ref.kind, pairs, at, merge_states, cache)
    if cache is not None:
        cache.put(ref.kind, pairs, entity_id)
    return entity_id, is_new


def _resolve(store: Any, kind: str, pairs: list[tuple[str, str]], at: float,
             merge_states: Callable[[str, str], None], cache: IdentityCache | None) -> tuple[str, bool]:
    found = store.lookup(kind, pairs)
    owners = sorted({store.resolve_alias(e) for e in found.values()}, key=store.entity_created_seq)
    if not owners:
        entity_id = store.new_entity_id(kind)
        store.link(kind, pairs, entity_id)
        return entity_id, True
    survivor = owners[0]
    for other in owners[1:]:
        merge_states(other, survivor)
        store.merge_entities(other, survivor, at)
        if cache is not None:
            cache.known.clear()
    missing = [p for p in pairs if found.get(p) != survivor]
    if missing:
        store.link(kind, missing, survivor)
    return survivor, False
