"""Transactions contract (all or nothing, nesting joins, others see only what committed, a reopened store
holds what committed) and the meta values."""

from __future__ import annotations

from typing import Callable

import pytest

from crmrules.store import Store

from .make import T0, decision, event, item, timer


class Boom(Exception):
    pass


def write_one_of_everything(store: Store) -> None:
    store.accept_many([event("e1")])
    store.link("lead", [("email", "kim@example.com")], "l_kim")
    store.save_entity("l_kim", "lead", {"tags": ["new"]})
    store.upsert_timers([timer("l_kim", "p/nudge", "no:1", T0)])
    store.record([decision("d1", "l_kim")], [item("k1", "l_kim", decision_id="d1")])
    store.set_meta("pull.hubspot.cursor", "42")


def nothing_written(store: Store) -> bool:
    return (store.inbox_counts() == {} and store.lookup_links("lead", [("email", "kim@example.com")]) == {}
            and store.entities() == [] and store.next_timer_at() is None and store.all_decisions() == []
            and store.outbox_counts() == {} and store.get_meta("pull.hubspot.cursor") is None)


def test_a_transaction_that_raises_leaves_nothing_behind(store: Store):
    with pytest.raises(Boom):
        with store.transaction():
            write_one_of_everything(store)
            assert store.inbox_depth() == 1  # its own writes are visible inside
            raise Boom
    assert nothing_written(store)
    store.accept_many([event("e1")])  # and the store takes writes afterwards
    assert store.inbox_depth() == 1


def test_a_nested_transaction_commits_with_the_outer_one_only(store: Store):
    with pytest.raises(Boom):
        with store.transaction():
            with store.transaction():
                write_one_of_everything(store)
            raise Boom
    assert nothing_written(store)
    with store.transaction():
        with store.transaction():
            write_one_of_everything(store)
    assert not nothing_written(store)


def test_others_see_a_transaction_only_once_it_committed(opener: Callable[[], Store]):
    store, other = opener(), opener()
    with store.transaction():
        store.set_meta("k", "v")
        store.accept_many([event("e1")])
        assert other.get_meta("k") is None and other.inbox_depth() == 0
    assert other.get_meta("k") == "v" and other.inbox_depth() == 1


def test_what_committed_is_there_after_reopening(opener: Callable[[], Store]):
    store = opener()
    write_one_of_everything(store)
    store.close()
    again = opener()
    assert [e.id for _, e in again.pending()] == ["e1"]
    assert again.lookup_links("lead", [("email", "kim@example.com")]) == {("email", "kim@example.com"): ("l_kim", True)}
    assert again.load_entity("l_kim") == {"tags": ["new"]}
    assert [d.id for d in again.all_decisions()] == ["d1"]
    assert [r["key"] for r in again.outbox_rows()] == ["k1"]
    assert again.get_meta("pull.hubspot.cursor") == "42"


def test_meta_values_are_set_replaced_and_defaulted(store: Store):
    assert store.get_meta("cursor") is None
    assert store.get_meta("cursor", "start") == "start"
    store.set_meta("cursor", "1")
    store.set_meta("cursor", "2")
    store.set_meta("other", "")
    assert store.get_meta("cursor", "start") == "2"
    assert store.get_meta("other", "start") == ""
