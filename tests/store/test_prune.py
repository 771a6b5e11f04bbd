"""Retention contract, through the store's own methods: what `prune` removes once it is old enough, and the
rows it never removes however old (tests/core/test_retention.py covers the pipeline, CLI and worker side)."""

from __future__ import annotations

from crmrules.config import Retention
from crmrules.store import Store

from .make import DAY, T0, decision, event, item, queue, timer


def live_and_finished(store: Store) -> None:
    """At T0, one of each: done, rejected and pending events; actions in every status, each with its decision;
    a decision without actions; a timer, an entity, its link and a meta value."""

    store.accept_many([event("done"), event("rejected"), event("pending")], received_at=T0)
    seqs = {e.id: seq for seq, e in store.pending()}
    store.finish(seqs["done"])
    store.finish(seqs["rejected"], "rejected", "cannot evaluate")
    queue(store, *(item(k, "l_kim") for k in ("sent", "cancelled", "pending", "sending", "dead")), created_at=T0)
    store.record([decision("no-action", "l_kim", at=T0)], [])
    store.claim_due(T0, owner="a")
    store.mark_sent("sent")
    store.mark_dead("dead", "refused")
    store.mark_retry("pending", T0, "busy")
    store.mark_retry("cancelled", T0, "busy")
    store.drop("cancelled")  # "sending" stays claimed; its lease runs out, and it is still not pruned
    store.upsert_timers([timer("l_kim", "p/nudge", "no:1", T0)])
    store.save_entity("l_kim", "lead", {"tags": ["new"]})
    store.link("lead", [("email", "kim@example.com")], "l_kim")
    store.set_meta("pull.hubspot.cursor", "42")


def test_prune_never_removes_what_something_still_needs(store: Store):
    live_and_finished(store)
    assert store.outbox_counts() == {"sent": 1, "cancelled": 1, "pending": 1, "sending": 1, "dead": 1}

    result = store.prune(Retention(), now=T0 + 400 * DAY)  # past every default horizon

    assert result.counts == {"inbox_payloads": 1, "inbox_keys": 1, "decisions": 3, "outbox": 2}
    assert not result.more
    assert store.inbox_counts() == {"rejected": 1, "pending": 1}
    assert [e.id for _, e in store.pending()] == ["pending"]
    assert store.outbox_counts() == {"pending": 1, "sending": 1, "dead": 1}
    assert sorted(d.id for d in store.all_decisions()) == ["d-dead", "d-pending", "d-sending"]
    assert store.next_timer_at() == T0
    assert store.load_entity("l_kim") == {"tags": ["new"]}
    assert store.lookup_links("lead", [("email", "kim@example.com")]) == {("email", "kim@example.com"): ("l_kim", True)}
    assert store.get_meta("pull.hubspot.cursor") == "42"
    assert store.retry_dead() == 1  # a dead letter can still be sent after pruning


def test_an_events_payload_goes_first_and_its_key_still_stops_a_redelivery(store: Store):
    store.link("lead", [("email", "old@example.com"), ("email", "new@example.com")], "l_kim")
    store.accept_many([event("old")], received_at=T0)
    store.accept_many([event("new")], received_at=T0 + 20 * DAY)
    store.finish_many([seq for seq, _ in store.pending()])
    keep_keys = Retention(events="30d", event_keys="90d")

    assert store.prune(keep_keys, now=T0 + 31 * DAY).counts["inbox_payloads"] == 1
    assert store.inbox_counts() == {"pruned": 1, "done": 1}
    assert [e.id for e in store.events_of("l_kim")] == ["new"]  # explain no longer lists the old one
    assert store.accept_many([event("old")]) == [False]

    assert store.prune(keep_keys, now=T0 + 91 * DAY).counts == {
        "inbox_payloads": 1, "inbox_keys": 1, "decisions": 0, "outbox": 0}
    assert store.inbox_counts() == {"pruned": 1}
    assert store.accept_many([event("old")], received_at=T0 + 91 * DAY) == [True]  # past its key horizon: new


def test_a_horizon_of_none_keeps_that_kind_and_a_dry_run_changes_nothing(store: Store):
    live_and_finished(store)
    now = T0 + 400 * DAY

    def snapshot() -> tuple:
        return (store.inbox_counts(), store.outbox_counts(), [d.id for d in store.all_decisions()])

    before = snapshot()
    keep_all = Retention(events=None, event_keys=None, decisions=None, outbox=None)
    assert store.prune(keep_all, now=now).total == 0
    assert snapshot() == before
    dry = store.prune(Retention(), now=now, dry_run=True)
    assert snapshot() == before
    assert dry.counts == store.prune(Retention(), now=now).counts
    assert snapshot() != before


def test_a_prune_stopped_early_says_so_and_the_next_one_goes_on(store: Store):
    store.accept_many([event(f"e{i}") for i in range(5)], received_at=T0)
    store.finish_many([seq for seq, _ in store.pending()])
    only_payloads = Retention(event_keys=None, batch=2)
    first = store.prune(only_payloads, now=T0 + 31 * DAY, max_batches=1)
    assert first.more and first.counts["inbox_payloads"] == 2
    stopped = store.prune(only_payloads, now=T0 + 31 * DAY, should_stop=lambda: True)
    assert stopped.more and stopped.total == 0
    rest = store.prune(only_payloads, now=T0 + 31 * DAY)
    assert not rest.more and rest.counts["inbox_payloads"] == 3
    assert store.inbox_counts() == {"pruned": 5}
