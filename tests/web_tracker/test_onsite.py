"""On-site messages: the web_tracker target's push stores them, the snippet's endpoints hand them out once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmrules.api import ActionNotSupported, OutboxItem, PushFailed
from crmrules.plugins import get_registry
from crmrules_web_tracker.onsite import OnsiteStore, open_onsite
from tests.support import plugins
from tests.web_tracker.stack import TEST_PACK, WRITE_KEY, StandIn, onsite_file, settings_for


def item(key: str = "k-1", ids: dict | None = None, rule: str = "pack/coupon", shadow: bool = False,
         **action) -> OutboxItem:
    fields = {"type": "message", "channel": "onsite", "subject": "쿠폰", "body": "코드 WELCOME10", "locale": "ko",
              **action}
    return OutboxItem(idempotency_key=key, decision_id="d", rule=rule, entity_id="l_1", entity_kind="lead",
                      identities={"anonymous_id": "anon-1"} if ids is None else ids, action=fields, due_at=0,
                      shadow=shadow)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[StandIn]:
    s = StandIn(settings_for(tmp_path, [TEST_PACK]))
    yield s
    s.stop()


def push(stack: StandIn, it: OutboxItem) -> str:
    """As the dispatcher does: the registered target, with the context of the stand-in's deployment."""

    return plugins.push("web_tracker", it, stack.settings)


def claim(stack: StandIn, **ids: str):
    query = "&".join(f"{k}={v}" for k, v in ids.items())
    r = stack.app.test_client().get(f"/v1/onsite?writeKey={WRITE_KEY}&{query}")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    return r.get_json()["messages"]


def shown(stack: StandIn, ids: list[str], **visitor: str):
    body = {"writeKey": WRITE_KEY, "ids": ids, **visitor}
    return stack.app.test_client().post("/v1/onsite/shown", data=json.dumps(body), content_type="text/plain")


def test_the_web_source_is_untrusted_and_the_target_is_web_tracker() -> None:
    registry = get_registry()
    assert registry.sources["web"].trusted is False and registry.sources["web"].plugin == "web_tracker"
    assert "web" not in registry.trusted_sources()
    assert registry.targets["web_tracker"].plugin == "web_tracker"


def test_only_onsite_messages(stack: StandIn) -> None:
    with pytest.raises(ActionNotSupported, match="channel 'email'"):
        push(stack, item(channel="email"))
    task = OutboxItem(idempotency_key="t", decision_id="d", rule="r", entity_id="l", entity_kind="lead",
                      identities={"anonymous_id": "a"}, action={"type": "task", "title": "Call"}, due_at=0)
    with pytest.raises(ActionNotSupported, match="not task"):
        push(stack, task)
    assert push(stack, item(shadow=True)).startswith("shadow")


def test_a_lead_without_web_ids_cannot_be_shown_anything(stack: StandIn) -> None:
    with pytest.raises(PushFailed, match="the lead has no anonymous_id"):
        push(stack, item(ids={"email": "kim@example.com", "hubspot_id": "1"}))
    with pytest.raises(PushFailed, match="onsite_lookup"):  # user ids find no one unless allowed
        push(stack, item(ids={"email": "kim@example.com", "user_id": "user-42"}))
    store = OnsiteStore(":memory:")
    with pytest.raises(ValueError, match="no web id"):
        store.add("k", {"email": "kim@example.com"}, "l", "r", "s", "b", None, ttl=1, once_per_rule=True)


def test_shown_once_then_never(stack: StandIn) -> None:
    assert push(stack, item()).startswith("onsite ")
    [message] = claim(stack, anonymousId="anon-1")
    assert message["subject"] == "쿠폰" and message["body"] == "코드 WELCOME10" and message["locale"] == "ko"
    assert claim(stack, anonymousId="anon-1") == []  # leased to the page that showed it
    assert claim(stack, anonymousId="someone-else") == []

    # Another visitor cannot mark it.
    assert shown(stack, [message["id"]], anonymousId="someone-else").get_json()["marked"] == 0
    r = shown(stack, [message["id"]], anonymousId="anon-1", userId="victim")
    assert r.status_code == 200 and r.get_json() == {"success": True, "marked": 1}
    assert shown(stack, [message["id"]], anonymousId="anon-1").get_json()["marked"] == 0

    # A retried push of the same outbox item changes nothing; nor does the same rule firing again.
    assert "not shown twice" in push(stack, item())
    assert "not shown twice" in push(stack, item(key="k-2"))
    store = open_onsite(onsite_file(stack.settings))
    [row] = store.rows()
    assert row["shown_at"] is not None and row["subject"] == row["body"] == ""
    later = store.claim({"anonymous_id": "anon-1"}, ["anonymous_id"], lease=30, limit=5, now=row["shown_at"] + 1e6)
    assert later == []

    # The showing is an event rules can use, still from the untrusted web source.
    [event] = [e for _seq, e in stack.store.pending(100)]
    assert (event.type, event.source, event.subject.ids) == ("onsite_message_shown", "web", {"anonymous_id": "anon-1"})
    assert event.properties == {"rule": "pack/coupon", "message_id": message["id"]}


def test_another_rule_is_another_message(stack: StandIn) -> None:
    push(stack, item())
    push(stack, item(key="k-2", rule="pack/other", subject="두 번째"))
    first = claim(stack, anonymousId="anon-1")
    assert [m["subject"] for m in first] == ["쿠폰"]  # one per page by default
    shown(stack, [first[0]["id"]], anonymousId="anon-1")
    assert [m["subject"] for m in claim(stack, anonymousId="anon-1")] == ["두 번째"]


def test_once_per_rule_can_be_turned_off(tmp_path: Path) -> None:
    store = OnsiteStore(str(tmp_path / "o.sqlite"))
    ids = {"anonymous_id": "a"}
    store.add("k1", ids, "l", "r", "s", "b", None, ttl=100, once_per_rule=False, now=0)
    store.mark_shown(ids, ["anonymous_id"], [store.rows()[0]["token"]], now=1)
    _, stored = store.add("k2", ids, "l", "r", "s", "b", None, ttl=100, once_per_rule=False, now=2)
    assert stored
    _, stored = store.add("k3", ids, "l", "r", "s", "b", None, ttl=100, once_per_rule=True, now=3)
    assert not stored


def test_lease_and_expiry(tmp_path: Path) -> None:
    store = OnsiteStore(str(tmp_path / "o.sqlite"))
    ids = {"anonymous_id": "a", "user_id": "u"}
    store.add("k1", ids, "l", "r", "s", "b", None, ttl=100, once_per_rule=True, now=0)
    [m] = store.claim({"anonymous_id": "a"}, ["anonymous_id"], lease=30, limit=5, now=1)
    assert store.claim({"anonymous_id": "a"}, ["anonymous_id"], lease=30, limit=5, now=20) == []
    # A page that never confirmed (closed too soon): after the lease, the next page gets it.
    [again] = store.claim({"anonymous_id": "a"}, ["anonymous_id"], lease=30, limit=5, now=40)
    assert again.id == m.id
    # The user id only finds it when the deployment allows it.
    assert store.claim({"user_id": "u"}, ["anonymous_id"], lease=30, limit=5, now=80) == []
    assert len(store.claim({"user_id": "u"}, ["anonymous_id", "user_id"], lease=30, limit=5, now=80)) == 1
    # Expired and never shown: gone at the next push.
    assert store.claim({"anonymous_id": "a"}, ["anonymous_id"], lease=30, limit=5, now=200) == []
    store.add("k2", {"anonymous_id": "b"}, "l", "r", "s", "b", None, ttl=100, once_per_rule=True, now=200)
    assert [r["key"] for r in store.rows()] == ["k2"]


def test_ids_are_not_stored_in_clear(tmp_path: Path) -> None:
    store = OnsiteStore(str(tmp_path / "o.sqlite"))
    store.add("k1", {"anonymous_id": "anon-secret", "email": "kim@example.com"}, "l", "r", "s", "b", None,
              ttl=100, once_per_rule=True, now=0)
    raw = (tmp_path / "o.sqlite").read_bytes() + (tmp_path / "o.sqlite-wal").read_bytes()
    assert b"anon-secret" not in raw and b"kim@example.com" not in raw


def test_user_id_lookup_is_opt_in(tmp_path: Path) -> None:
    s = StandIn(settings_for(tmp_path, onsite_lookup=["anonymous_id", "user_id"]))
    try:
        push(s, item(ids={"user_id": "user-42", "email": "kim@example.com"}))
        assert len(claim(s, userId="user-42")) == 1
    finally:
        s.stop()


def test_a_dispatcher_on_its_own_keeps_them_where_the_receiver_finds_them(stack: StandIn, tmp_path: Path) -> None:
    # No receiver app around (a dispatcher process of its own): the plugin's folder follows from the store path.
    assert plugins.push("web_tracker", item(), stack.settings.model_dump()).startswith("onsite ")
    assert len(claim(stack, anonymousId="anon-1")) == 1
    assert Path(onsite_file(stack.settings)).is_file()
    # An absolute onsite_store is used as it is.
    elsewhere = settings_for(tmp_path, onsite_store=str(tmp_path / "elsewhere.sqlite"))
    assert plugins.push("web_tracker", item(key="k-9"), elsewhere).startswith("onsite ")
    assert (tmp_path / "elsewhere.sqlite").exists()


def test_onsite_endpoints_need_a_known_write_key(stack: StandIn) -> None:
    client = stack.app.test_client()
    assert client.get("/v1/onsite?anonymousId=anon-1").status_code == 401
    assert client.get("/v1/onsite?writeKey=nope&anonymousId=anon-1").status_code == 401
    r = client.post("/v1/onsite/shown", data=json.dumps({"ids": ["x"]}), content_type="text/plain")
    assert r.status_code == 401
    r = client.post("/v1/onsite/shown", data=json.dumps({"writeKey": WRITE_KEY}), content_type="text/plain")
    assert r.status_code == 400
    assert claim(stack) == []  # no ids, nothing
