"""Timers contract: one timer per (entity, rule key, key), re-arming replaces it; due order; cancel by rule."""

from __future__ import annotations

from crmrules.store import Store

from .make import HOUR, MINUTE, T0, timer


def test_re_arming_a_timer_replaces_it(store: Store):
    store.upsert_timers([timer("l_kim", "p/nudge", "no:visit", T0 + HOUR, leaf="s0", anchor="e1")])
    store.upsert_timers([timer("l_kim", "p/nudge", "no:visit", T0 + 2 * HOUR, leaf="s1", anchor="e2", trusted=True)])
    assert store.due_timers(T0 + 10 * HOUR) == [{"entity_id": "l_kim", "rule_key": "p/nudge", "key": "no:visit",
                                                 "due_at": T0 + 2 * HOUR, "leaf": "s1",
                                                 "payload": {"anchor": "e2", "trusted": True}}]
    store.upsert_timers([timer("l_kim", "p/nudge", "no:other", T0 + HOUR),
                         timer("l_lee", "p/nudge", "no:visit", T0 + HOUR),
                         timer("l_kim", "p/remind", "no:visit", T0 + HOUR)])
    assert len(store.due_timers(T0 + 10 * HOUR)) == 4


def test_due_timers_come_in_due_order_and_stay_until_deleted(store: Store):
    store.upsert_timers([timer("l_b", "p/r", "k", T0 + 2 * MINUTE), timer("l_c", "p/r", "k", T0 + MINUTE),
                         timer("l_c", "p/r", "k2", T0 + 30 * MINUTE),
                         timer("l_a", "p/r", "k", T0 + MINUTE), timer("l_a", "p/q", "k", T0 + MINUTE),
                         timer("l_d", "p/r", "k", T0 + HOUR)])
    assert store.next_timer_at() == T0 + MINUTE
    due = store.due_timers(T0 + 2 * MINUTE)  # due at `until` counts
    assert [(t["entity_id"], t["rule_key"]) for t in due] == [("l_a", "p/q"), ("l_a", "p/r"), ("l_c", "p/r"),
                                                              ("l_b", "p/r")]
    assert [t["entity_id"] for t in store.due_timers(T0 + 2 * MINUTE, limit=2)] == ["l_a", "l_a"]
    assert store.due_timers(T0 + MINUTE - 1) == []
    assert len(store.due_timers(T0 + 2 * MINUTE)) == 4  # reading removed nothing
    for t in due[:3]:
        store.delete_timer(t["entity_id"], t["rule_key"], t["key"])
    store.delete_timer("l_a", "p/q", "k")  # already gone: nothing happens
    assert store.next_timer_at() == T0 + 2 * MINUTE
    assert [(t["entity_id"], t["key"]) for t in store.due_timers(T0 + HOUR)] == [("l_b", "k"), ("l_c", "k2"),
                                                                                 ("l_d", "k")]


def test_cancelling_a_rules_timers_says_how_many_waited(store: Store):
    assert store.next_timer_at() is None
    store.upsert_timers([timer("l_kim", "p/nudge", "a", T0 + 3 * HOUR), timer("l_kim", "p/nudge", "b", T0 + HOUR),
                         timer("l_kim", "p/other", "a", T0 + 2 * HOUR), timer("l_lee", "p/nudge", "a", T0)])
    assert store.cancel_timers("l_kim", "p/nudge") == 2
    assert store.cancel_timers("l_kim", "p/nudge") == 0
    assert store.timers_of("l_kim") == [{"rule_key": "p/other", "key": "a", "due_at": T0 + 2 * HOUR}]
    assert [t["rule_key"] for t in store.timers_of("l_lee")] == ["p/nudge"]


def test_an_entitys_timers_are_listed_by_due_time(store: Store):
    store.upsert_timers([timer("l_kim", "p/b", "k", T0 + 2 * HOUR), timer("l_kim", "p/a", "k", T0 + 3 * HOUR),
                         timer("l_kim", "p/c", "k", T0 + HOUR), timer("l_lee", "p/a", "k", T0)])
    assert [t["rule_key"] for t in store.timers_of("l_kim")] == ["p/c", "p/b", "p/a"]
    assert store.timers_of("l_nobody") == []
