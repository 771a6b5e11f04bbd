"""Write keys are public: what tracker events alone can and cannot make crmrules do."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmrules.api import EntityRef, Event
from tests.web_tracker.stack import TEST_PACK, WRITE_KEY, StandIn, settings_for

AUTH = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[StandIn]:
    s = StandIn(settings_for(tmp_path, [TEST_PACK]))
    yield s
    s.stop()


def post(stack: StandIn, path: str, body: dict) -> None:
    r = stack.app.test_client().post(path, data=json.dumps(body), headers=AUTH, content_type="text/plain")
    assert r.status_code == 200, r.get_json()


def views(stack: StandIn, anonymous_id: str, start: int = 0) -> None:
    for n in range(3):
        post(stack, "/v1/t", {"type": "track", "event": "Product Viewed", "anonymousId": anonymous_id,
                              "messageId": f"{anonymous_id}-{start + n}", "properties": {"product_id": "p1"},
                              "timestamp": f"2026-01-05T0{n}:00:00Z"})


def crm_lead(stack: StandIn, email: str) -> None:
    """A lead the CRM knows (an authenticated source)."""

    stack.pipeline.ingest([Event(id=f"crm-{email}", source="hubspot", type="record_update",
                                 occurred_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                                 subject=EntityRef(ids={"email": email, "hubspot_id": "101"}),
                                 properties={"email": email, "first_name": "대표", "email_opt_in": False})])


def test_tracker_events_alone_only_score_tag_and_show(stack: StandIn) -> None:
    views(stack, "anon-1")
    stack.process()
    outcomes = {d.rule: (d.outcome, d.reason) for d in stack.store.all_decisions()}
    assert outcomes["secret-coupon"][0] == "fired"
    assert outcomes["call-the-browser"][0] == "blocked"
    assert "only tracker events are known" in outcomes["call-the-browser"][1]
    assert {row["action_type"] for row in stack.store.outbox_rows()} == {"message", "score"}


def test_the_browser_cannot_opt_anyone_in(stack: StandIn) -> None:
    crm_lead(stack, "kim@corp.example")
    post(stack, "/v1/i", {"type": "identify", "anonymousId": "anon-2", "messageId": "i-1",
                          "timestamp": "2026-01-05T00:00:00Z",
                          "traits": {"email": "kim@corp.example", "email_opt_in": True, "unsubscribed": False,
                                     "emailOptIn": True, "marketing_consent": True, "tags": ["vip"], "score": 99}})
    stack.process()
    for _id, _kind, state in stack.store.entities("lead"):  # the CRM's lead, and the claimant's own profile
        assert state["props"].get("email_opt_in") in (False, None) and "unsubscribed" not in state["props"]
        assert "marketing_consent" not in state["props"]
        assert state["tags"] == [] and state["score"] == 0
    crm = lead_of(stack, "kim@corp.example")
    assert crm["props"]["email_opt_in"] is False


def test_reserved_types_cannot_merge_or_set_from_the_browser(stack: StandIn) -> None:
    crm_lead(stack, "ceo@corp.example")
    for name in ("merge", "record_update"):
        r = stack.app.test_client().post("/v1/t", headers=AUTH, data=json.dumps({
            "type": "track", "event": name, "anonymousId": "anon-3",
            "properties": {"merged_ids": {"email": "ceo@corp.example"}, "email_opt_in": True}}))
        assert r.status_code == 400
    stack.process()
    assert len(stack.store.entities("lead")) == 1


def lead_of(stack: StandIn, value: str) -> dict:
    entity_id = stack.store.find_entity(value)
    assert entity_id is not None, value
    return stack.store.load_entity(entity_id)


def test_claiming_someone_elses_email_does_not_unlock_their_lead(stack: StandIn) -> None:
    crm_lead(stack, "ceo@corp.example")
    post(stack, "/v1/i", {"type": "identify", "anonymousId": "evil", "messageId": "i-evil",
                          "timestamp": "2026-01-05T00:00:00Z",
                          "traits": {"email": "ceo@corp.example", "name": "Mallory", "timezone": "Pacific/Apia"}})
    views(stack, "evil", start=10)
    stack.process()
    outcomes = {d.rule: d.outcome for d in stack.store.all_decisions()}
    assert outcomes["call-the-browser"] == "blocked"  # no CRM task from a stranger's clicks
    assert {row["action_type"] for row in stack.store.outbox_rows()} <= {"message", "score"}
    ceo = lead_of(stack, "ceo@corp.example")
    # The CEO's lead keeps its own ids and fields: on-site messages for it cannot reach the poster's browser.
    assert ceo["identities"] == {"email": "ceo@corp.example", "hubspot_id": "101"}
    assert ceo["props"]["first_name"] == "대표" and "timezone" not in ceo["props"] and "name" not in ceo["props"]
    assert ceo["history"] == {} and not any(d.entity_id == stack.store.find_entity("ceo@corp.example")
                                            for d in stack.store.all_decisions())
    # The poster got a profile of their own, which shows what it claimed.
    [poster] = [s for _i, _k, s in stack.store.entities("lead") if s["identities"] == {"anonymous_id": "evil"}]
    assert poster["claims"] == {"email": "ceo@corp.example"} and poster["trusted"] is False


def test_claiming_an_email_before_the_crm_knows_it_unlocks_nothing_later(stack: StandIn) -> None:
    post(stack, "/v1/i", {"type": "identify", "anonymousId": "early", "messageId": "i-early",
                          "timestamp": "2026-01-04T00:00:00Z", "traits": {"email": "new@corp.example"}})
    stack.process()
    crm_lead(stack, "new@corp.example")  # the real person becomes a CRM lead afterwards
    views(stack, "early", start=20)
    stack.process()
    assert {d.rule: d.outcome for d in stack.store.all_decisions()}["call-the-browser"] == "blocked"
    assert lead_of(stack, "new@corp.example")["identities"] == {"email": "new@corp.example", "hubspot_id": "101"}
    assert len(stack.store.entities("lead")) == 2


def test_a_visitor_the_crm_reports_by_anonymous_id_is_stitched_and_unlocked(stack: StandIn) -> None:
    views(stack, "anon-9")  # browsing while anonymous: tracker events only
    post(stack, "/v1/i", {"type": "identify", "anonymousId": "anon-9", "messageId": "i-9",
                          "timestamp": "2026-01-05T04:00:00Z", "traits": {"email": "lee@corp.example"}})
    stack.process()
    assert {d.rule: d.outcome for d in stack.store.all_decisions()}["call-the-browser"] == "blocked"
    # A CRM form submission carries the tracking cookie: the CRM itself says this browser is this lead.
    stack.pipeline.ingest([Event(id="crm-form-9", source="hubspot", type="record_update",
                                 occurred_at=dt.datetime(2026, 1, 5, 5, tzinfo=dt.timezone.utc),
                                 subject=EntityRef(ids={"email": "lee@corp.example", "hubspot_id": "202",
                                                        "anonymous_id": "anon-9"}),
                                 properties={"email": "lee@corp.example", "first_name": "서준"})])
    stack.process()
    [(lead_id, _kind, state)] = stack.store.entities("lead")
    assert state["trusted"] is True and len(state["history"]["product_view"]) == 3  # the earlier browsing too
    assert state["identities"] == {"anonymous_id": "anon-9", "email": "lee@corp.example", "hubspot_id": "202"}
    for n in range(3):
        post(stack, "/v1/t", {"type": "track", "event": "Product Viewed", "anonymousId": "anon-9",
                              "messageId": f"anon-9-later-{n}", "properties": {"product_id": "p2"},
                              "timestamp": f"2026-01-06T0{n}:00:00Z"})
    stack.process()
    fired = [d for d in stack.store.all_decisions() if d.rule == "call-the-browser" and d.outcome == "fired"]
    assert [a.type for d in fired for a in d.actions] == ["task"] and fired[0].entity_id == lead_id


def test_an_unvouched_id_on_a_stitched_lead_counts_but_unlocks_nothing(stack: StandIn) -> None:
    """The CRM vouched for anon-a only; the same visitor's user id came from the tracker alone."""

    post(stack, "/v1/i", {"type": "identify", "anonymousId": "anon-a", "userId": "user-a", "messageId": "i-a",
                          "timestamp": "2026-01-04T00:00:00Z", "traits": {"name": "방문자"}})
    stack.process()
    stack.pipeline.ingest([Event(id="crm-a", source="hubspot", type="record_update",
                                 occurred_at=dt.datetime(2026, 1, 4, 1, tzinfo=dt.timezone.utc),
                                 subject=EntityRef(ids={"email": "a@corp.example", "anonymous_id": "anon-a"}),
                                 properties={"first_name": "에이"})])
    for n in range(3):
        post(stack, "/v1/t", {"type": "track", "event": "Product Viewed", "userId": "user-a",
                              "messageId": f"user-a-{n}", "properties": {"product_id": "p3"},
                              "timestamp": f"2026-01-05T0{n}:00:00Z"})
    stack.process()
    [(_id, _kind, state)] = stack.store.entities("lead")
    assert state["trusted"] is True and len(state["history"]["product_view"]) == 3
    outcomes = {d.rule: (d.outcome, d.reason) for d in stack.store.all_decisions()}
    assert outcomes["call-the-browser"][0] == "blocked" and "no trusted source vouched for" in outcomes["call-the-browser"][1]
