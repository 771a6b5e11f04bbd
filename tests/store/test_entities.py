"""Entities contract: a state saved is the state loaded (the last save wins), listing in creation order, and
finding an entity by what an operator types."""

from __future__ import annotations

from crmrules.store import Store

from .make import T0

STATE = {"id": "l_kim", "kind": "lead", "props": {"email": "kim@example.com", "score": 12.5, "vip": True,
                                                  "none": None, "nested": {"a": [1, 2, {"b": "c"}]}},
         "tags": ["new", "hot"], "history": {"visit": [[T0, "e1"]]}}


def test_a_saved_state_loads_back_equal_and_the_last_save_wins(store: Store):
    assert store.load_entity("l_kim") is None
    store.save_entity("l_kim", "lead", STATE)
    assert store.load_entity("l_kim") == STATE
    newer = {**STATE, "tags": ["customer"]}
    store.save_entity("l_kim", "lead", newer)
    assert store.load_entity("l_kim") == newer
    store.save_entities([("l_kim", "lead", {"v": 3}, T0), ("l_lee", "lead", {"v": 1}, T0)])
    assert store.load_entity("l_kim") == {"v": 3}
    assert store.load_entity("l_lee") == {"v": 1}


def test_entities_are_listed_in_creation_order_and_by_kind(store: Store):
    store.save_entities([("l_b", "lead", {"n": "b"}, T0), ("a_x", "account", {"n": "x"}, T0)])
    store.save_entity("l_a", "lead", {"n": "a"})
    store.save_entity("l_b", "lead", {"n": "b2"})  # saved again: keeps its place
    assert store.entities() == [("l_b", "lead", {"n": "b2"}), ("a_x", "account", {"n": "x"}),
                                ("l_a", "lead", {"n": "a"})]
    assert [e for e, _, _ in store.entities("lead")] == ["l_b", "l_a"]
    assert store.entities("deal") == []


def test_an_entity_is_found_by_id_identity_value_or_name(store: Store):
    store.save_entity("l_kim", "lead", {"props": {"email": "kim@example.com", "name": "Kim Minjun"}})
    store.save_entity("l_lee", "lead", {"props": {"first_name": "Seo-yeon", "last_name": "Lee"}})
    store.link("lead", [("email", "kim@example.com"), ("hubspot_id", "101")], "l_kim")
    assert store.find_entity("l_kim") == "l_kim"
    assert store.find_entity("kim@example.com") == "l_kim"
    assert store.find_entity("KIM@example.com") == "l_kim"  # also tried lowercased
    assert store.find_entity("101") == "l_kim"
    assert store.find_entity("Kim Minjun") == "l_kim"
    assert store.find_entity("Seo-yeon Lee") == "l_lee"  # the display name
    assert store.find_entity("nobody@example.com") is None


def test_a_vouched_record_is_found_before_a_claimant(store: Store):
    store.save_entity("l_claimant", "lead", {})
    store.save_entity("l_lead", "lead", {})
    store.link("lead", [("claimed:email", "kim@example.com")], "l_claimant", trusted=False)
    assert store.find_entity("kim@example.com") == "l_claimant"  # only the claim names it yet
    store.link("lead", [("email", "kim@example.com")], "l_lead")
    assert store.find_entity("kim@example.com") == "l_lead"
