"""Identity: every id a source knows (email, CRM ids, web anonymous id) lands on one entity.

When one event of a trusted source names ids that belong to two entities (a CRM form that carries the web
visitor's anonymous id, a CRM merge), the two become one: the older entity survives, the other's ids, timers,
decisions and state move to it.

Untrusted sources (the public tracker: anyone can post any id) do not get that power. Each link remembers
whether a trusted source made it. An untrusted event is placed by its visitor ids (`VISITOR_ID_KINDS`: the
random anonymous id, the site's user id); every other id it names (an email in an `identify`) is only a
*claim*: kept on its entity's state to show, never linked, merged on, or pushed. It never merges entities and
never adds an id to an entity a trusted source vouched for. Its events count as the trusted lead's own —
privileged actions included — only when they arrive by a visitor id that a trusted source linked to that lead
(`Resolved.vouched`): the CRM reported the same anonymous id or user id, which stitches the visitor's profile
into the lead. See docs/architecture.md, "Identity and trust".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from .models import EntityRef

if TYPE_CHECKING:
    from .store import IdentityStore

VISITOR_ID_KINDS = ("anonymous_id", "user_id")
"""Ids an untrusted source observes itself (its visitor's browser or login); whatever else it names is a claim."""

CLAIMED = "claimed:"
"""Prefix of the id kind under which a claim is linked: found by `find_entity`, never by a trusted source's ids."""

CLAIMANT = "claimant"
"""The id kind of the profile an untrusted event without visitor ids lands on (its claims, joined)."""


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


def resolve(store: IdentityStore, ref: EntityRef, at: float,
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


def _resolve(store: IdentityStore, kind: str, pairs: list[tuple[str, str]], at: float,
             merge_states: Callable[[str, str], None], cache: IdentityCache | None) -> tuple[str, bool]:
    found = store.lookup_links(kind, pairs)
    owners = sorted({store.resolve_alias(e) for e, _ in found.values()}, key=store.entity_created_seq)
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
    # A trusted source vouches for every id it names: links the tracker made become trusted ones.
    missing = [p for p in pairs if found.get(p) != (survivor, True)]
    if missing:
        store.link(kind, missing, survivor)
    return survivor, False


@dataclass
class Resolved:
    """Where an untrusted event lands, and on what authority."""

    entity_id: str
    is_new: bool
    vouched: bool  # it came by a visitor id that a trusted source linked to this entity
    own: list[tuple[str, str]] = field(default_factory=list)  # its ids that are (now) linked to the entity
    claims: list[tuple[str, str]] = field(default_factory=list)  # ids it named that it may not take


def resolve_untrusted(store: IdentityStore, ref: EntityRef) -> Resolved:
    """An untrusted event's entity: found by its visitor ids only; never merges, never takes a vouched lead's id."""

    pairs = normalise(ref)
    own = [p for p in pairs if p[0] in VISITOR_ID_KINDS]
    claims = [p for p in pairs if p[0] not in VISITOR_ID_KINDS]
    if not own:  # nothing of its own: one profile per set of claims, which no trusted source can vouch for
        own = [(CLAIMANT, ";".join(f"{k}={v}" for k, v in claims))]
    found = {p: (store.resolve_alias(e), trusted) for p, (e, trusted) in store.lookup_links(ref.kind, own).items()}
    vouching = sorted({e for p, (e, t) in found.items() if t and p[0] in VISITOR_ID_KINDS},
                      key=store.entity_created_seq)
    home: str | None
    if vouching:
        home, vouched = vouching[0], True
    else:
        owners = sorted({e for e, _t in found.values()}, key=store.entity_created_seq)
        home, vouched = (owners[0] if owners else None), False
    is_new = home is None
    if home is None:
        home = store.new_entity_id(ref.kind)
    unowned = [p for p in own if p not in found]
    linked = [p for p in own if p in found and found[p][0] == home]
    if unowned and not vouched:
        store.link(ref.kind, unowned, home, trusted=False)
        linked += unowned
    else:
        claims += unowned  # a vouched lead takes no new id from an untrusted source
    claims += [p for p in own if p in found and found[p][0] != home]
    if claims:  # findable (`crmrules explain lee@example.com`) under a kind no trusted source names
        store.link(ref.kind, [(f"{CLAIMED}{k}", v) for k, v in claims], home, trusted=False)
    return Resolved(home, is_new, vouched, linked, claims)
