"""Identity: every id a source knows (email, CRM ids, web anonymous id) lands on one entity.

When one event names ids that belong to two entities (an anonymous visitor who identifies, a CRM merge),
the two become one: the older entity survives, the other's ids, timers, decisions and state move to it.
"""

from __future__ import annotations

from typing import Any, Callable

from .models import EntityRef


def normalise(ref: EntityRef) -> list[tuple[str, str]]:
    return [(k, v.strip().lower() if k == "email" else v.strip()) for k, v in sorted(ref.ids.items())]


def resolve(store: Any, ref: EntityRef, at: float,
            merge_states: Callable[[str, str], None]) -> tuple[str, bool]:
    """The entity id for `ref` (created if new); merges entities the ids show to be one. Returns (id, is_new)."""

    pairs = normalise(ref)
    found = store.lookup(ref.kind, pairs)
    owners = sorted({store.resolve_alias(e) for e in found.values()}, key=store.entity_created_seq)
    if not owners:
        entity_id = store.new_entity_id(ref.kind)
        store.link(ref.kind, pairs, entity_id)
        return entity_id, True
    survivor = owners[0]
    for other in owners[1:]:
        merge_states(other, survivor)
        store.merge_entities(other, survivor, at)
    missing = [p for p in pairs if found.get(p) != survivor]
    if missing:
        store.link(ref.kind, missing, survivor)
    return survivor, False
