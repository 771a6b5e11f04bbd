"""Outbox contract: idempotency keys (insert, never replace), claims and their lease, release of a dead
process's claims, sent / retry / dead, an operator's retry and drop, a goal's cancel of delayed actions, and
the consent re-check's waiting actions and cancels."""

from __future__ import annotations

from typing import Callable

from crmrules.store import Store

from .make import HOUR, MINUTE, T0, item, queue


def row(store: Store, key: str) -> dict:
    (found,) = [r for r in store.outbox_rows() if r["key"] == key]
    return dict(found)


def test_an_action_recorded_again_never_resets_its_row(store: Store):
    for key in ("sent", "dead", "retrying", "cancelled", "sending"):
        queue(store, item(key, "l_kim", title=f"call ({key})"))
    store.claim_due(T0, owner="host:1:a")
    store.mark_sent("sent", "task 55")
    store.mark_dead("dead", "refused")
    store.mark_retry("retrying", T0 + HOUR, "429")
    store.release_claims("host:1:a", T0, "test")  # "cancelled" and "sending" are pending again
    store.drop("cancelled")
    store.claim_due(T0, owner="host:1:b")
    before = {r["key"]: r for r in store.outbox_rows()}
    assert {k: r["status"] for k, r in before.items()} == {
        "sent": "sent", "dead": "dead", "retrying": "pending", "cancelled": "cancelled", "sending": "sending"}

    # a replay, a redelivery evaluated again after its inbox key was pruned: the same keys, another body
    again = [item(key, "l_kim", due_at=T0 - HOUR, title="changed") for key in before]
    assert queue(store, *again, created_at=T0 + HOUR) == 0
    assert {r["key"]: r for r in store.outbox_rows()} == before


def test_a_claim_takes_due_actions_in_due_order_and_holds_them_for_its_lease(opener: Callable[[], Store]):
    store, other_process = opener(), opener()
    queue(store, item("later", "l_kim", due_at=T0 + MINUTE), item("first", "l_kim", due_at=T0 - HOUR),
          item("second", "l_kim", due_at=T0), item("future", "l_kim", due_at=T0 + HOUR))
    assert store.claim_due(T0 - 2 * HOUR, owner="a") == []
    claimed = store.claim_due(T0 + MINUTE, limit=2, lease=30, owner="a")
    assert [(i.idempotency_key, attempts) for i, attempts in claimed] == [("first", 0), ("second", 0)]
    assert claimed[0][0] == item("first", "l_kim", due_at=T0 - HOUR)
    assert sorted(store.claimants()) == ["a"]
    # nobody else gets them while the lease holds, from this instance or another one on the same store
    assert [i.idempotency_key for i, _ in other_process.claim_due(T0 + MINUTE + 29, owner="b")] == ["later"]
    assert store.claim_due(T0 + MINUTE + 29, owner="c") == []
    assert sorted(store.claimants(), key=str) == ["a", "b"]
    # a lease that ran out (its process hung): anyone may take them again, attempts untouched
    again = other_process.claim_due(T0 + MINUTE + 30, owner="b")
    assert sorted((i.idempotency_key, n) for i, n in again) == [("first", 0), ("second", 0)]
    assert {r["key"]: r["status"] for r in store.outbox_rows()} == {
        "later": "sending", "first": "sending", "second": "sending", "future": "pending"}


def test_released_claims_are_due_again_without_counting_an_attempt(store: Store):
    queue(store, item("mine", "l_kim", due_at=T0 - MINUTE), item("theirs", "l_kim", due_at=T0),
          item("also-mine", "l_kim", due_at=T0 + MINUTE))
    store.claim_due(T0, limit=1, lease=HOUR, owner="host:1:dead")
    store.claim_due(T0, limit=1, lease=HOUR, owner="host:2:alive")
    store.claim_due(T0 + MINUTE, lease=HOUR, owner="host:1:dead")
    assert sorted(store.claimants(), key=str) == ["host:1:dead", "host:2:alive"]
    assert store.release_claims("host:1:dead", T0 + 2 * MINUTE, "its process died") == 2
    assert store.release_claims("host:1:dead", T0 + 2 * MINUTE, "again") == 0
    assert store.claimants() == ["host:2:alive"]
    mine = row(store, "mine")
    assert (mine["status"], mine["attempts"], mine["last_error"]) == ("pending", 0, "its process died")
    assert mine["next_at"] <= T0 + 2 * MINUTE
    assert row(store, "theirs")["status"] == "sending"
    assert sorted(i.idempotency_key for i, _ in store.claim_due(T0 + 2 * MINUTE, owner="host:3:new")) == [
        "also-mine", "mine"]


def test_an_owner_may_be_unnamed(store: Store):
    queue(store, item("k", "l_kim"))
    store.claim_due(T0)
    assert store.claimants() == [None]


def test_sent_retry_and_dead_each_count_an_attempt_and_clear_the_claim(store: Store):
    queue(store, item("ok", "l_kim"), item("busy", "l_kim"), item("bad", "l_kim"))
    store.claim_due(T0, owner="a")
    store.mark_sent("ok", '{"id": 7}')
    store.mark_retry("busy", T0 + 10 * MINUTE, "429 Too Many Requests")
    store.mark_dead("bad", "400 invalid email")
    assert store.claimants() == []
    assert {k: (row(store, k)["status"], row(store, k)["attempts"], row(store, k)["last_error"])
            for k in ("ok", "busy", "bad")} == {
        "ok": ("sent", 1, None), "busy": ("pending", 1, "429 Too Many Requests"), "bad": ("dead", 1, "400 invalid email")}
    assert row(store, "ok")["sent_at"] is not None and row(store, "busy")["sent_at"] is None
    assert row(store, "busy")["next_at"] == T0 + 10 * MINUTE
    assert store.claim_due(T0 + 10 * MINUTE - 1, owner="a") == []  # neither sent nor dead rows are claimed
    (busy, attempts), = store.claim_due(T0 + 10 * MINUTE, owner="a")
    assert (busy.idempotency_key, attempts) == ("busy", 1)
    store.mark_retry("busy", T0 + HOUR, "503")
    assert row(store, "busy")["attempts"] == 2


def test_an_operator_retries_dead_letters_and_drops_actions(store: Store):
    queue(store, item("dead-1", "l_kim"), item("dead-2", "l_kim"), item("sent", "l_kim"),
          item("waiting", "l_kim", due_at=T0 + MINUTE))
    store.claim_due(T0, owner="a")
    store.mark_dead("dead-1", "refused")
    store.mark_dead("dead-2", "refused")
    store.mark_sent("sent")
    assert store.retry_dead("dead-1") == 1
    assert (row(store, "dead-1")["status"], row(store, "dead-1")["attempts"]) == ("pending", 0)
    assert store.retry_dead("sent") == 0
    assert store.retry_dead() == 1
    assert store.retry_dead() == 0
    assert sorted(i.idempotency_key for i, _ in store.claim_due(T0 + MINUTE, owner="a")) == [
        "dead-1", "dead-2", "waiting"]
    store.mark_dead("dead-1", "refused again")
    store.mark_retry("waiting", T0 + HOUR, "busy")
    assert store.drop("dead-1") == 1
    assert store.drop("waiting") == 1
    assert store.drop("sent") == 0  # pushed already: there is nothing to give up
    assert store.drop("dead-2") == 0  # sending: the push is under way
    assert store.drop("no-such-key") == 0
    assert store.outbox_counts() == {"cancelled": 2, "sent": 1, "sending": 1}
    assert store.claim_due(T0 + 2 * HOUR, owner="b")[0][0].idempotency_key == "dead-2"  # its lease ran out


def test_a_goal_cancels_only_the_rules_pending_actions_due_after_it(store: Store):
    queue(store, item("now", "l_kim", due_at=T0, rule="p/drip"),
          item("in-1d", "l_kim", due_at=T0 + 24 * HOUR, rule="p/drip"),
          item("in-2d", "l_kim", due_at=T0 + 48 * HOUR, rule="p/drip"),
          item("in-3d", "l_kim", due_at=T0 + 72 * HOUR, rule="p/drip"),
          item("other-rule", "l_kim", due_at=T0 + 48 * HOUR, rule="p/other"),
          item("other-lead", "l_lee", due_at=T0 + 48 * HOUR, rule="p/drip"))
    store.claim_due(T0, owner="a")  # "now" is being pushed
    store.mark_dead("in-3d", "refused")
    assert store.cancel_pending("l_kim", "p/drip", T0 + 24 * HOUR) == 1  # in-1d is due at `after`, not after it
    assert {r["key"]: r["status"] for r in store.outbox_rows()} == {
        "now": "sending", "in-1d": "pending", "in-2d": "cancelled", "in-3d": "dead", "other-rule": "pending",
        "other-lead": "pending"}
    assert store.cancel_pending("l_kim", "p/drip", T0 + 24 * HOUR) == 0


def test_outbox_rows_by_creation_time_with_counts_per_status(store: Store):
    queue(store, item("b", "l_kim", due_at=T0 + HOUR), created_at=T0)
    queue(store, item("a", "l_kim", due_at=T0 + HOUR), created_at=T0)
    queue(store, item("0-late", "l_kim", due_at=T0), created_at=T0 + MINUTE)
    queue(store, item("sent", "l_kim", due_at=T0), created_at=T0 + 2 * MINUTE)
    store.claim_due(T0, owner="a")
    store.mark_sent("sent")
    assert [r["key"] for r in store.outbox_rows()] == ["a", "b", "0-late", "sent"]
    assert [r["key"] for r in store.outbox_rows(limit=2)] == ["a", "b"]
    assert [r["key"] for r in store.outbox_rows("pending")] == ["a", "b"]
    assert [r["key"] for r in store.outbox_rows("dead")] == []
    first = store.outbox_rows()[0]
    assert {k: first[k] for k in ("key", "rule", "entity_id", "action_type", "status", "attempts", "due_at",
                                  "next_at", "last_error", "sent_at")} == {
        "key": "a", "rule": "welcome", "entity_id": "l_kim", "action_type": "tag", "status": "pending",
        "attempts": 0, "due_at": T0 + HOUR, "next_at": T0 + HOUR, "last_error": None, "sent_at": None}
    assert first["body"] == item("a", "l_kim", due_at=T0 + HOUR).model_dump_json()
    assert store.outbox_counts() == {"pending": 2, "sending": 1, "sent": 1}


def test_a_consent_change_finds_and_cancels_only_pending_actions(store: Store):
    """The roles the consent re-check needs (issue 16, opt-out honoured at send time): an entity's waiting
    (pending) actions by due time, and a cancel with a reason that leaves claimed, sent and dead rows alone."""

    queue(store, item("later", "l_kim", due_at=T0 + 2 * HOUR), item("soon", "l_kim", due_at=T0 + HOUR),
          item("sending", "l_kim", due_at=T0 - HOUR), item("dead", "l_kim", due_at=T0 + 3 * HOUR),
          item("lee", "l_lee", due_at=T0 + HOUR))
    store.claim_due(T0, owner="a")  # "sending" is being pushed
    store.mark_dead("dead", "refused")
    assert [i.idempotency_key for i in store.waiting_of("l_kim")] == ["soon", "later"]
    assert store.cancel_waiting(["soon", "sending", "dead", "lee-not-a-key"], "consent: opted out") == 1
    assert row(store, "soon")["status"] == "cancelled" and row(store, "soon")["last_error"] == "consent: opted out"
    assert {k: row(store, k)["status"] for k in ("later", "sending", "dead", "lee")} == {
        "later": "pending", "sending": "sending", "dead": "dead", "lee": "pending"}
    assert [i.idempotency_key for i in store.waiting_of("l_kim")] == ["later"]


def test_a_claimed_action_withheld_at_send_time_is_cancelled_without_an_attempt(store: Store):
    """`mark_cancelled`: the dispatcher's last consent check refused a claimed action; it is never claimed
    again, counts no attempt and keeps the reason."""

    queue(store, item("k", "l_kim", due_at=T0))
    [(claimed, _)] = store.claim_due(T0, owner="a")
    store.mark_cancelled(claimed.idempotency_key, "consent: lead unsubscribed, email message not sent")
    found = row(store, "k")
    assert (found["status"], found["attempts"], found["last_error"]) == (
        "cancelled", 0, "consent: lead unsubscribed, email message not sent")
    assert store.claimants() == []
    assert store.claim_due(T0 + 10 * HOUR, owner="b") == []
