"""Identities contract: ids lead to their entity, trust per link, fresh entity ids in a stable creation order,
and a merge that moves everything of one entity to another, leaving an alias behind."""

from __future__ import annotations

from crmrules.store import Store

from .make import HOUR, T0, decision, item, queue, timer


def test_linked_ids_lead_to_their_entity_and_say_who_vouched(store: Store):
    store.link("lead", [("email", "kim@example.com"), ("hubspot_id", "101")], "l_kim")
    store.link("lead", [("anonymous_id", "anon-1")], "l_kim", trusted=False)
    found = store.lookup_links("lead", [("email", "kim@example.com"), ("anonymous_id", "anon-1"),
                                        ("email", "nobody@example.com"), ("hubspot_id", "kim@example.com")])
    assert found == {("email", "kim@example.com"): ("l_kim", True), ("anonymous_id", "anon-1"): ("l_kim", False)}
    assert store.lookup_links("account", [("email", "kim@example.com")]) == {}  # ids are per entity kind
    assert store.lookup_links("lead", []) == {}


def test_a_trusted_link_takes_an_id_over_and_an_untrusted_one_never_does(store: Store):
    anon = [("anonymous_id", "anon-1")]
    store.link("lead", anon, "l_visitor", trusted=False)
    store.link("lead", anon, "l_other", trusted=False)
    assert store.lookup_links("lead", anon) == {anon[0]: ("l_visitor", False)}
    store.link("lead", anon, "l_kim")  # the CRM reports the same anonymous id with Kim's email
    assert store.lookup_links("lead", anon) == {anon[0]: ("l_kim", True)}
    store.link("lead", anon, "l_visitor", trusted=False)
    assert store.lookup_links("lead", anon) == {anon[0]: ("l_kim", True)}
    store.link("lead", anon, "l_lee")
    assert store.lookup_links("lead", anon) == {anon[0]: ("l_lee", True)}


def test_new_entity_ids_are_fresh_and_creation_order_never_changes(store: Store):
    ids = [store.new_entity_id("lead") for _ in range(500)]
    assert len(set(ids)) == 500
    first, second, third = ids[:3]
    store.save_entity(second, "lead", {"n": 1})
    store.save_entity(first, "lead", {"n": 1})
    store.save_entity(third, "lead", {"n": 1})
    store.save_entity(second, "lead", {"n": 2})  # saved again: still the oldest
    store.save_entities([(first, "lead", {"n": 2}, T0)])
    order = sorted([first, second, third, ids[3]], key=store.entity_created_seq)
    assert order == [second, first, third, ids[3]]  # one never saved sorts after all


def test_a_merge_moves_links_timers_decisions_and_actions_to_the_survivor(store: Store):
    store.save_entity("l_kim", "lead", {"props": {"email": "kim@example.com"}})
    store.save_entity("l_anon", "lead", {"props": {"page": "/pricing"}})
    store.link("lead", [("email", "kim@example.com")], "l_kim")
    store.link("lead", [("anonymous_id", "anon-1")], "l_anon", trusted=False)
    store.upsert_timers([timer("l_kim", "p/nudge", "no:1", T0 + 2 * HOUR),
                         timer("l_anon", "p/nudge", "no:1", T0 + HOUR),  # the survivor has this one: its own wins
                         timer("l_anon", "p/remind", "wait:1", T0 + 3 * HOUR)])
    store.record([decision("d-anon", "l_anon", at=T0)], [])
    queue(store, item("k-anon", "l_anon", due_at=T0 + 5 * HOUR, rule="p/remind"))

    store.merge_entities("l_anon", "l_kim", T0 + HOUR)

    assert store.lookup_links("lead", [("anonymous_id", "anon-1")]) == {("anonymous_id", "anon-1"): ("l_kim", False)}
    assert store.resolve_alias("l_anon") == "l_kim"
    assert store.resolve_alias("l_kim") == "l_kim"
    assert store.load_entity("l_anon") is None
    assert store.load_entity("l_kim") == {"props": {"email": "kim@example.com"}}  # the caller merges states
    assert [e for e, _k, _s in store.entities()] == ["l_kim"]
    assert [(t["rule_key"], t["key"], t["due_at"]) for t in store.timers_of("l_kim")] == [
        ("p/nudge", "no:1", T0 + 2 * HOUR), ("p/remind", "wait:1", T0 + 3 * HOUR)]
    assert store.timers_of("l_anon") == []
    assert {d.id for d in store.decisions_of("l_kim")} == {"d-anon", "d-k-anon"}
    assert store.decisions_of("l_anon") == []
    assert [r["entity_id"] for r in store.outbox_rows()] == ["l_kim"]
    assert store.cancel_pending("l_kim", "p/remind", T0) == 1  # the moved action is the survivor's now


def test_aliases_follow_merges_of_merges(store: Store):
    for entity_id in ("l_a", "l_b", "l_c"):
        store.save_entity(entity_id, "lead", {})
    store.merge_entities("l_c", "l_b", T0)
    store.merge_entities("l_b", "l_a", T0 + 1)
    assert store.resolve_alias("l_c") == "l_a"
    assert store.resolve_alias("l_b") == "l_a"
    assert store.resolve_alias("l_unknown") == "l_unknown"
