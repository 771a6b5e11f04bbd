"""The hubspot target's push against the HubSpot stand-in, through the real hubspot-api-client over loopback HTTP."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from crmrules.api import ActionNotSupported, OutboxItem, PushFailed, RetryLater

from ..standins.hubspot import HubSpotState
from ..support import plugins

KOREAN = "관심 높음"
_keys = itertools.count(1)
DECIDED = 1_790_000_000.0


def item(action: dict[str, Any], identities: dict[str, str] | None = None, kind: str = "lead",
         key: str | None = None) -> OutboxItem:
    return OutboxItem.model_validate({
        "idempotency_key": key or f"key-{next(_keys)}", "decision_id": "d1", "rule": "quickstart/hot-lead",
        "entity_id": "L1", "entity_kind": kind, "identities": identities or {}, "action": action,
        "due_at": DECIDED + float(action.get("after") or 0)})


def push(it: OutboxItem, settings: dict[str, Any]) -> str:
    result = plugins.push("hubspot", it, settings)
    assert isinstance(result, str)
    return result


@pytest.fixture
def contact(hubspot_state: HubSpotState) -> str:
    return hubspot_state.add("contacts", {"email": "kim@example.com", "firstname": "유진", "lastname": "김"}).id


# ---------------------------------------------------------------- tags

def test_tag_adds_korean_tag_once(settings, hubspot_state: HubSpotState, contact: str) -> None:
    hubspot_state.get("contacts", contact).properties["crmrules_tags"] = "vip"
    first = item({"type": "tag", "tag": KOREAN}, {"hubspot_id": contact})
    push(first, settings)
    push(first, settings)  # a retry
    push(item({"type": "tag", "tag": KOREAN}, {"hubspot_id": contact}), settings)  # another rule, same tag
    assert hubspot_state.get("contacts", contact).properties["crmrules_tags"] == f"vip;{KOREAN}"
    assert len(hubspot_state.property_updates) == 1
    assert hubspot_state.property_updates[0].properties == {"crmrules_tags": f"vip;{KOREAN}"}


def test_untag_removes_and_is_idempotent(settings, hubspot_state: HubSpotState, contact: str) -> None:
    hubspot_state.get("contacts", contact).properties["crmrules_tags"] = f"vip;{KOREAN};cold"
    it = item({"type": "untag", "tag": KOREAN}, {"hubspot_id": contact})
    push(it, settings)
    assert "unchanged" in push(it, settings)
    assert hubspot_state.get("contacts", contact).properties["crmrules_tags"] == "vip;cold"


def test_tags_property_is_configurable(settings, hubspot_state: HubSpotState, contact: str) -> None:
    settings["plugins"]["hubspot"]["tags_property"] = "lead_tags"
    push(item({"type": "tag", "tag": "hot"}, {"hubspot_id": contact}), settings)
    assert hubspot_state.get("contacts", contact).properties["lead_tags"] == "hot"


def test_tag_with_a_semicolon_cannot_be_stored(settings, contact: str) -> None:
    with pytest.raises(PushFailed, match="semicolon"):
        push(item({"type": "tag", "tag": "a;b"}, {"hubspot_id": contact}), settings)


def test_tag_on_a_company(settings, hubspot_state: HubSpotState) -> None:
    company = hubspot_state.add("companies", {"name": "아크미"}).id
    push(item({"type": "tag", "tag": "key-account"}, {"hubspot_id": company}, kind="account"), settings)
    assert hubspot_state.get("companies", company).properties["crmrules_tags"] == "key-account"


# ---------------------------------------------------------------- score

def test_score_adds_points_once_per_key(settings, hubspot_state: HubSpotState, contact: str) -> None:
    it = item({"type": "score", "points": 30}, {"hubspot_id": contact})
    push(it, settings)
    assert "already" in push(it, settings)
    push(item({"type": "score", "points": -5.5}, {"hubspot_id": contact}), settings)
    props = hubspot_state.get("contacts", contact).properties
    assert props["crmrules_score"] == "24.5"
    assert len(props["crmrules_score_keys"].split(";")) == 2


def test_score_ledger_keeps_only_recent_keys(settings, hubspot_state: HubSpotState, contact: str) -> None:
    settings["plugins"]["hubspot"].update(score_property="lead_points", score_ledger_size=3)
    for _ in range(5):
        push(item({"type": "score", "points": 1}, {"hubspot_id": contact}), settings)
    props = hubspot_state.get("contacts", contact).properties
    assert props["lead_points"] == "5" and len(props["crmrules_score_keys"].split(";")) == 3


# ---------------------------------------------------------------- set

def test_set_maps_names_and_keeps_korean(settings, hubspot_state: HubSpotState, contact: str) -> None:
    push(item({"type": "set", "properties": {"first_name": "민수", "lead_note": KOREAN, "lead_status": "OPEN",
                                              "vip": True, "budget": 1200000.0}},
              {"hubspot_id": contact}), settings)
    assert hubspot_state.property_updates[-1].properties == {
        "firstname": "민수", "lead_note": KOREAN, "hs_lead_status": "OPEN", "vip": "true", "budget": "1200000"}
    assert hubspot_state.get("contacts", contact).properties["lead_note"] == KOREAN


def test_set_refuses_properties_hubspot_computes(settings, contact: str) -> None:
    with pytest.raises(PushFailed, match="hs_email_optout"):
        push(item({"type": "set", "properties": {"unsubscribed": True}}, {"hubspot_id": contact}), settings)


def test_unknown_property_in_hubspot_is_pushfailed_with_hubspots_message(
        settings, hubspot_state: HubSpotState, contact: str) -> None:
    hubspot_state.known_properties = {"contacts": {"email", "firstname"}}
    with pytest.raises(PushFailed, match='Property "shoe_size" does not exist \\(PROPERTY_DOESNT_EXIST\\)$') as caught:
        push(item({"type": "set", "properties": {"shoe_size": "270"}}, {"hubspot_id": contact}), settings)
    assert not isinstance(caught.value, RetryLater)


# ---------------------------------------------------------------- task

def test_task_is_created_associated_and_deduplicated(settings, hubspot_state: HubSpotState, contact: str) -> None:
    it = item({"type": "task", "title": "김유진님께 오늘 전화", "body": KOREAN, "due_in": 1800, "priority": "high"},
              {"hubspot_id": contact, "email": "kim@example.com"})
    result = push(it, settings)
    again = push(it, settings)
    [task] = hubspot_state.tasks
    assert result.startswith(f"task {task.id}") and "already created" in again
    assert task.properties["hs_task_subject"] == "김유진님께 오늘 전화"
    assert task.properties["hs_task_body"] == KOREAN
    assert task.properties["hs_task_priority"] == "HIGH"
    assert task.properties["hs_task_status"] == "NOT_STARTED"
    assert task.properties["crmrules_key"] == it.idempotency_key
    due_ms = int((DECIDED + 1800) * 1000)
    assert task.properties["hs_timestamp"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(due_ms / 1000)))
    [link] = hubspot_state.associations_of("tasks", task.id)
    assert (link.to_type, link.to_id, link.type_id) == ("contacts", contact, 204)


def test_task_due_time_counts_from_the_decision_not_the_delay(settings, hubspot_state: HubSpotState,
                                                             contact: str) -> None:
    push(item({"type": "task", "title": "t", "due_in": 600, "after": 3600}, {"hubspot_id": contact}), settings)
    [task] = hubspot_state.tasks
    assert task.properties["hs_timestamp"].startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(DECIDED + 600)))


def test_task_on_a_deal_uses_the_deal_association(settings, hubspot_state: HubSpotState) -> None:
    deal = hubspot_state.add("deals", {"dealname": "갱신"}).id
    push(item({"type": "task", "title": "renewal call"}, {"hubspot_id": deal}, kind="deal"), settings)
    [link] = hubspot_state.associations_of("tasks", hubspot_state.tasks[0].id)
    assert (link.to_type, link.type_id) == ("deals", 216)


def test_task_owner_mapping(settings, hubspot_state: HubSpotState, contact: str) -> None:
    settings["plugins"]["hubspot"]["owner_ids"] = {"sales@example.com": "777"}
    push(item({"type": "task", "title": "a", "owner": "sales@example.com"}, {"hubspot_id": contact}), settings)
    result = push(item({"type": "task", "title": "b", "owner": "nobody"}, {"hubspot_id": contact}), settings)
    owners = sorted(str(t.properties.get("hubspot_owner_id")) for t in hubspot_state.tasks)
    assert owners == ["777", "None"] and "left unassigned" in result


def test_task_create_that_timed_out_is_retried_after_search_lag_and_not_duplicated(
        settings, hubspot_state: HubSpotState, contact: str) -> None:
    """HubSpot applied the POST, but the answer came too late: the retry must find it, not make another."""
    settings["plugins"]["hubspot"].update(timeout=0.3, search_lag=7)
    it = item({"type": "task", "title": "slow"}, {"hubspot_id": contact})
    # The search before the create takes the first (harmless) fault; the create takes the slow one.
    hubspot_state.queue_fault(delay=0.01, path_prefix="/crm/v3/objects/tasks/search")
    hubspot_state.queue_fault(delay=1.0, path_prefix="/crm/v3/objects/tasks", method="POST")
    with pytest.raises(RetryLater) as caught:
        push(it, settings)
    assert caught.value.retry_after == 7
    deadline = time.monotonic() + 3
    while not hubspot_state.tasks and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "already created" in push(it, settings)
    assert len(hubspot_state.tasks) == 1


def test_task_for_a_lead_known_by_email_only(settings, hubspot_state: HubSpotState, contact: str) -> None:
    push(item({"type": "task", "title": "call"}, {"email": "KIM@example.com"}), settings)
    [link] = hubspot_state.associations_of("tasks", hubspot_state.tasks[0].id)
    assert link.to_id == contact


def test_lead_without_a_hubspot_record(settings, hubspot_state: HubSpotState) -> None:
    with pytest.raises(PushFailed, match="no HubSpot record for nobody@example.com"):
        push(item({"type": "task", "title": "call"}, {"email": "nobody@example.com"}), settings)
    with pytest.raises(PushFailed, match="no HubSpot record"):
        push(item({"type": "tag", "tag": "x"}, {"anonymous_id": "a1"}), settings)
    assert hubspot_state.tasks == []


def test_deleted_record_is_pushfailed(settings, hubspot_state: HubSpotState) -> None:
    with pytest.raises(PushFailed, match="404"):
        push(item({"type": "tag", "tag": "x"}, {"hubspot_id": "424242"}), settings)


# ---------------------------------------------------------------- message

def test_message_without_template_is_a_note(settings, hubspot_state: HubSpotState, contact: str) -> None:
    it = item({"type": "message", "channel": "email", "subject": "계약서 확인 부탁드립니다",
               "body": "김유진님, 계약서를 확인해 주세요.\n감사합니다 <3"}, {"hubspot_id": contact})
    push(it, settings)
    assert "already created" in push(it, settings)
    [note] = hubspot_state.notes
    body = note.properties["hs_note_body"]
    assert "계약서 확인 부탁드립니다" in body and "김유진님, 계약서를 확인해 주세요.<br>감사합니다 &lt;3" in body
    assert hubspot_state.emails_sent == []
    [link] = hubspot_state.associations_of("notes", note.id)
    assert (link.to_id, link.type_id) == (contact, 202)


def test_message_with_template_sends_one_transactional_email(settings, hubspot_state: HubSpotState,
                                                             contact: str) -> None:
    settings["plugins"]["hubspot"]["email_template_ids"] = {"contract-reminder": 4242}
    it = item({"type": "message", "channel": "email", "template": "contract-reminder", "subject": "계약서",
               "body": KOREAN}, {"hubspot_id": contact, "email": "kim@example.com"})
    result = push(it, settings)
    assert result.startswith("email ") and "note" in result
    [sent] = hubspot_state.emails_sent
    assert sent["emailId"] == 4242 and sent["message"] == {"to": "kim@example.com", "sendId": it.idempotency_key}
    assert sent["customProperties"] == {"subject": "계약서", "body": KOREAN}
    assert "transactional email 4242" in hubspot_state.notes[0].properties["hs_note_body"]


def test_advertising_message_is_not_sent_as_transactional(settings, contact: str) -> None:
    settings["plugins"]["hubspot"]["email_template_ids"] = {"default": 1}
    with pytest.raises(ActionNotSupported, match="transactional"):
        push(item({"type": "message", "channel": "email", "body": "세일!", "advertising": True},
                  {"hubspot_id": contact}), settings)


# ---------------------------------------------------------------- unsupported, failures

def test_webhook_action_is_not_supported(settings, contact: str) -> None:
    with pytest.raises(ActionNotSupported, match="cannot apply 'webhook' actions"):
        push(item({"type": "webhook", "url": "https://example.com"}, {"hubspot_id": contact}), settings)
    with pytest.raises(ActionNotSupported, match="'chat_notify'"):
        push(item({"type": "custom", "name": "chat_notify", "params": {"text": "hi"}}, {"hubspot_id": contact}),
             settings)


def test_rate_limit_surfaces_retry_after(settings, hubspot_state: HubSpotState, contact: str) -> None:
    hubspot_state.queue_rate_limit(retry_after=7)
    with pytest.raises(RetryLater) as caught:
        push(item({"type": "tag", "tag": "x"}, {"hubspot_id": contact}), settings)
    assert caught.value.retry_after == 7
    assert "TEN_SECONDLY_ROLLING" in caught.value.reason
    # The GET was not silently re-sent by urllib3 (the dispatcher owns retries).
    assert [r.status for r in hubspot_state.requests_to(f"/crm/v3/objects/contacts/{contact}")] == [429]


def test_rate_limit_on_the_write_itself(settings, hubspot_state: HubSpotState, contact: str) -> None:
    hubspot_state.queue_rate_limit(retry_after=3, path_prefix="/crm/v3/objects/tasks")
    with pytest.raises(RetryLater) as caught:
        push(item({"type": "task", "title": "t"}, {"hubspot_id": contact}), settings)
    assert caught.value.retry_after == 3 and hubspot_state.tasks == []


def test_rate_limit_without_retry_after_waits_for_the_window(settings, hubspot_state: HubSpotState,
                                                             contact: str) -> None:
    hubspot_state.queue_rate_limit(retry_after=None)
    with pytest.raises(RetryLater) as caught:
        push(item({"type": "tag", "tag": "x"}, {"hubspot_id": contact}), settings)
    assert caught.value.retry_after == 10


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_retry(settings, hubspot_state: HubSpotState, contact: str, status: int) -> None:
    hubspot_state.queue_fault(status=status)
    with pytest.raises(RetryLater, match=str(status)):
        push(item({"type": "tag", "tag": "x"}, {"hubspot_id": contact}), settings)


def test_timeouts_and_refused_connections_retry(settings, hubspot_state: HubSpotState, contact: str) -> None:
    settings["plugins"]["hubspot"]["timeout"] = 0.2
    hubspot_state.queue_fault(delay=1.0)
    with pytest.raises(RetryLater, match="unreachable"):
        push(item({"type": "tag", "tag": "x"}, {"hubspot_id": contact}), settings)
    settings["plugins"]["hubspot"]["host"] = "http://127.0.0.1:9"  # nothing listens on the discard port
    with pytest.raises(RetryLater, match="unreachable"):
        push(item({"type": "tag", "tag": "x"}, {"hubspot_id": contact}), settings)


def test_bad_token_is_pushfailed(settings, hubspot_state: HubSpotState, contact: str, monkeypatch) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "wrong")
    with pytest.raises(PushFailed, match="401.*HUBSPOT_ACCESS_TOKEN") as caught:
        push(item({"type": "tag", "tag": "x"}, {"hubspot_id": contact}), settings)
    assert "wrong" not in str(caught.value)


def test_missing_token_is_pushfailed(settings, monkeypatch) -> None:
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN")
    with pytest.raises(PushFailed, match="HUBSPOT_ACCESS_TOKEN"):
        push(item({"type": "tag", "tag": "x"}, {"hubspot_id": "1"}), settings)


def test_bad_settings_name_the_key(settings) -> None:
    settings["plugins"]["hubspot"]["tags_propert"] = "typo"
    with pytest.raises(ValueError, match="plugins.hubspot.tags_propert"):  # the dispatcher: a dead letter
        push(item({"type": "tag", "tag": "x"}, {"hubspot_id": "1"}), settings)
