"""Inbox contract: each (source, event id) accepted once, redeliveries answered as such, pending order,
the move out of pending, and the events `explain` lists for an entity."""

from __future__ import annotations

import threading

from crmrules.store import Store

from .make import HOUR, T0, event


def test_an_event_is_accepted_once_per_source_and_id(store: Store):
    first = event("e1")
    other_source = event("e1", source="hubspot")
    again = event("e1", type="changed")  # same source and id, other content: still the same event
    assert store.accept_many([first, other_source, again]) == [True, True, False]
    assert store.accept_many([event("e2"), event("e1")]) == [True, False]
    pending = [e for _seq, e in store.pending()]
    assert [(e.source, e.id, e.type) for e in pending] == [
        ("test", "e1", "signup"), ("hubspot", "e1", "signup"), ("test", "e2", "signup")]  # the first copy is kept
    assert pending[0] == first


def test_a_redelivery_is_a_duplicate_whatever_became_of_the_event(store: Store):
    store.accept_many([event("done"), event("rejected"), event("waiting")])
    (s1, _), (s2, _), _ = store.pending()
    store.finish(s1)
    store.finish(s2, "rejected", "cannot evaluate")
    assert store.accept_many([event("done"), event("rejected"), event("waiting")]) == [False, False, False]
    assert store.inbox_counts() == {"done": 1, "rejected": 1, "pending": 1}


def test_pending_comes_in_arrival_order_or_in_event_time(store: Store):
    for name, at in (("late", T0 + 2 * HOUR), ("early", T0), ("middle", T0 + HOUR), ("early-too", T0)):
        store.accept_many([event(name, at=at)])
    arrival = store.pending()
    assert [e.id for _, e in arrival] == ["late", "early", "middle", "early-too"]
    seqs = [seq for seq, _ in arrival]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert [e.id for _, e in store.pending(order="event_time")] == ["early", "early-too", "middle", "late"]
    assert [e.id for _, e in store.pending(2)] == ["late", "early"]
    assert [e.id for _, e in store.pending(2, "event_time")] == ["early", "early-too"]
    assert [e.id for _, e in store.pending()] == ["late", "early", "middle", "early-too"]  # reading took nothing


def test_finishing_moves_events_out_of_pending(store: Store):
    assert store.pending() == [] and store.inbox_depth() == 0 and store.inbox_counts() == {}
    assert store.accept_many([]) == []
    store.accept_many([event(f"e{i}") for i in range(5)])
    seqs = [seq for seq, _ in store.pending()]
    assert store.inbox_depth() == 5
    store.finish(seqs[0])
    store.finish(seqs[1], "rejected", "KeyError: 'email'")
    store.finish_many(seqs[2:4])
    store.finish(10**9)  # no such event: nothing happens
    assert [e.id for _, e in store.pending()] == ["e4"]
    assert store.inbox_depth() == 1
    assert store.inbox_counts() == {"done": 3, "rejected": 1, "pending": 1}


def test_events_of_an_entity_are_its_evaluated_events_in_event_time(store: Store):
    store.link("lead", [("email", "kim@example.com"), ("hubspot_id", "101")], "l_kim")
    store.link("lead", [("email", "lee@example.com")], "l_lee")
    store.link("account", [("domain", "example.com"), ("hubspot_id", "101")], "a_example")  # a company's id
    deal = {"kind": "account", "ids": {"domain": "example.com"}}
    store.accept_many([
        event("visit", at=T0 + HOUR, email="Kim@Example.com"),  # emails compare lowercased
        event("crm", at=T0, hubspot_id="101"),
        event("lee", at=T0, email="lee@example.com"),
        event("company", at=T0 + 2 * HOUR, email="nobody@example.com", related=[deal]),
        event("waiting", at=T0 - HOUR, email="kim@example.com"),
    ])
    store.finish_many([seq for seq, e in store.pending() if e.id != "waiting"])
    assert [e.id for e in store.events_of("l_kim")] == ["crm", "visit"]
    assert [e.id for e in store.events_of("a_example")] == ["company"]  # a related record counts; a lead's 101 not
    assert store.events_of("l_nobody") == []
    store.merge_entities("l_lee", "l_kim", T0)
    assert [e.id for e in store.events_of("l_kim")] == ["crm", "lee", "visit"]


def test_threads_sharing_one_store_accept_each_event_once(store: Store):
    results: list[list[bool]] = []
    events = [event(f"e{i}") for i in range(40)]

    def deliver() -> None:
        results.append(store.accept_many(events))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert [sum(r[i] for r in results) for i in range(40)] == [1] * 40  # each event new for exactly one thread
    assert store.inbox_depth() == 40
