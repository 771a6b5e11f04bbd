"""Decisions contract: recorded with their actions, listed per entity and in all, in decision time; a decision
recorded again stays one."""

from __future__ import annotations

from crmrules.store import Store

from .make import HOUR, T0, decision, item


def test_decisions_come_back_equal_in_decision_time(store: Store):
    late, early, tie = decision("d1", "l_kim", at=T0 + HOUR), decision("d2", "l_kim", at=T0), \
        decision("d3", "l_kim", at=T0, reason="quiet hours")
    other = decision("d4", "l_lee", at=T0 - HOUR)
    assert store.record([late, early], []) == 0
    store.record([tie, other], [])
    assert store.decisions_of("l_kim") == [early, tie, late]  # ties in the order they were recorded
    assert store.all_decisions() == [other, early, tie, late]
    assert store.decisions_of("l_nobody") == []


def test_a_decision_recorded_again_stays_one_and_unchanged(store: Store):
    first = decision("d1", "l_kim", reason="first")
    store.record([first], [item("k1", "l_kim", decision_id="d1")])
    store.record([decision("d1", "l_kim", reason="second")], [])
    assert store.all_decisions() == [first]


def test_recording_counts_the_new_actions(store: Store):
    d = decision("d1", "l_kim")
    assert store.record([d], [item("k1", "l_kim", decision_id="d1"), item("k2", "l_kim", decision_id="d1")]) == 2
    assert store.record([d], [item("k2", "l_kim", decision_id="d1"), item("k3", "l_kim", decision_id="d1")]) == 1
    assert store.outbox_counts() == {"pending": 3}
