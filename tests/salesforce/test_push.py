"""The salesforce target's push against the Salesforce stand-in, through the real simple-salesforce over loopback HTTP:
every action type, Korean text, task idempotency, converted Leads, and how failures are classified."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterator

import pytest
from flask import request

from crmrules.api import ActionNotSupported, PushFailed, RetryLater
from crmrules.plugins import get_registry
from crmrules_salesforce.push import marker

from ..standins import salesforce as sf_standin
from ..standins.salesforce import SalesforceState, sf_id
from ..support.servers import RunningServer, serve
from ..support import plugins
from .conftest import SESSION_ID, deployment, item, through
from .envelopes import ORG_ID

API = "/services/data/v59.0"


def push(action: dict[str, Any], options: dict[str, Any], **kwargs: Any) -> str:
    """Through the registry, as the dispatcher calls it (entry point discovery included)."""

    return plugins.push("salesforce", item(action, **kwargs), deployment(options))


@pytest.fixture
def lead(sf_state: SalesforceState) -> str:
    return sf_state.add("Lead", {"LastName": "김", "FirstName": "유진", "Company": "가나다",
                                 "Email": "kim@example.com"}).id


def test_the_salesforce_target_is_registered_by_name() -> None:
    assert get_registry().targets["salesforce"].plugin == "salesforce"


# ---------------------------------------------------------------- set / tag / score

def test_set_writes_fields_with_korean_text(options: dict[str, Any], sf_state: SalesforceState, sf, lead: str) -> None:
    result = push({"type": "set", "properties": {"Description": "관심 높음 — 가격 페이지 2회", "first_name": "유진",
                                                 "Rating": "Hot"}}, options, ids={"salesforce_id": lead})

    assert "set Description, FirstName, Rating" in result
    assert sf_state.updates[-1].fields == {"Description": "관심 높음 — 가격 페이지 2회", "FirstName": "유진",
                                           "Rating": "Hot"}
    assert sf.Lead.get(lead)["Description"] == "관심 높음 — 가격 페이지 2회"


def test_set_of_a_property_without_a_salesforce_name_fails_clearly(options: dict[str, Any], lead: str) -> None:
    with pytest.raises(PushFailed, match="등급.*plugins.salesforce.fields"):
        push({"type": "set", "properties": {"등급": "VIP"}}, options, ids={"salesforce_id": lead})
    options["fields"] = {"등급": "Grade__c"}
    assert "Grade__c" in push({"type": "set", "properties": {"등급": "VIP"}}, options, ids={"salesforce_id": lead})


def test_tags_are_a_semicolon_list_updated_idempotently(options: dict[str, Any], sf_state: SalesforceState,
                                                        lead: str) -> None:
    ids = {"salesforce_id": lead}
    assert "tagged 관심 높음" in push({"type": "tag", "tag": "관심 높음"}, options, ids=ids)
    assert "tagged vip" in push({"type": "tag", "tag": "vip"}, options, ids=ids)
    writes = len(sf_state.updates)
    assert "unchanged" in push({"type": "tag", "tag": "VIP"}, options, ids=ids)  # same tag, any case: no write
    assert len(sf_state.updates) == writes
    assert sf_state.get("Lead", lead).fields["Crmrules_Tags__c"] == "관심 높음;vip"
    assert "untagged 관심 높음" in push({"type": "untag", "tag": "관심 높음"}, options, ids=ids)
    assert "unchanged" in push({"type": "untag", "tag": "관심 높음"}, options, ids=ids)
    assert sf_state.get("Lead", lead).fields["Crmrules_Tags__c"] == "vip"
    with pytest.raises(PushFailed, match="separated"):
        push({"type": "tag", "tag": "a;b"}, options, ids=ids)


def test_tags_field_is_configurable(options: dict[str, Any], sf_state: SalesforceState, lead: str) -> None:
    options["tags_field"] = "Interests__c"
    sf_state.get("Lead", lead).fields["Interests__c"] = "webinar"
    push({"type": "tag", "tag": "pricing"}, options, ids={"salesforce_id": lead})
    assert sf_state.get("Lead", lead).fields["Interests__c"] == "webinar;pricing"


def test_score_after_the_decision_is_written_absolutely(options: dict[str, Any], sf_state: SalesforceState,
                                                        lead: str) -> None:
    """A retry after a crash writes the same number again instead of adding the points twice."""
    ids = {"salesforce_id": lead}
    for _ in range(2):
        assert "Crmrules_Score__c = 30" in push({"type": "score", "points": 30}, options, ids=ids, record={"score": 30.0})
    assert sf_state.get("Lead", lead).fields["Crmrules_Score__c"] == 30


def test_score_is_added_to_the_score_field(options: dict[str, Any], sf_state: SalesforceState, lead: str) -> None:
    ids = {"salesforce_id": lead}
    assert "0 → 30" in push({"type": "score", "points": 30}, options, ids=ids)
    assert "30 → 20.5" in push({"type": "score", "points": -9.5}, options, ids=ids)
    assert sf_state.get("Lead", lead).fields["Crmrules_Score__c"] == 20.5
    options["score_field"] = "Engagement__c"
    push({"type": "score", "points": 5}, options, ids=ids)
    assert sf_state.get("Lead", lead).fields["Engagement__c"] == 5


def test_account_and_opportunity_fields(options: dict[str, Any], sf_state: SalesforceState) -> None:
    account = sf_state.add("Account", {"Name": "가나다"}).id
    deal = sf_state.add("Opportunity", {"Name": "갱신", "StageName": "Prospecting", "CloseDate": "2030-01-01"}).id
    push({"type": "set", "properties": {"industry": "제조"}}, options, ids={"salesforce_id": account},
         kind="account")
    push({"type": "set", "properties": {"stage": "Negotiation/Review"}}, options, ids={"salesforce_id": deal},
         kind="deal")
    assert sf_state.get("Account", account).fields["Industry"] == "제조"
    assert sf_state.get("Opportunity", deal).fields["StageName"] == "Negotiation/Review"


# ---------------------------------------------------------------- tasks

def test_task_on_a_lead_with_korean_text_due_date_and_priority(options: dict[str, Any], sf_state: SalesforceState,
                                                               sf, lead: str) -> None:
    decided = dt.datetime(2030, 5, 1, 14, 30, tzinfo=dt.timezone.utc).timestamp()  # 23:30 in Seoul
    action = {"type": "task", "title": "김유진님에게 전화하기", "body": "가격 페이지를 두 번 봤습니다.\n오늘 연락하세요.",
              "due_in": 3600, "priority": "high"}

    result = push(action, options, ids={"salesforce_id": lead}, key="a" * 32, due_at=decided)

    [task] = sf_state.tasks
    assert result == f"Task {task.id}"
    fields = sf.Task.get(task.id)  # read back over HTTP: the Korean text round-trips
    assert fields["WhoId"] == lead and "WhatId" not in task.fields
    assert fields["Subject"] == "김유진님에게 전화하기"
    assert fields["Description"] == f"가격 페이지를 두 번 봤습니다.\n오늘 연락하세요.\n\n{marker('a' * 32)}"
    assert fields["Priority"] == "High"
    assert fields["ActivityDate"] == "2030-05-02"  # 00:30 the next day in the org's zone (Asia/Seoul)
    assert fields["ReminderDateTime"] == "2030-05-01T15:30:00.000+0000" and fields["IsReminderSet"] is True


def test_task_is_created_once_per_idempotency_key(options: dict[str, Any], sf_state: SalesforceState,
                                                  lead: str) -> None:
    action = {"type": "task", "title": "Call back", "body": "", "priority": "medium"}
    first = push(action, options, ids={"salesforce_id": lead}, key="b" * 32)
    again = push(action, options, ids={"salesforce_id": lead}, key="b" * 32)  # a retry after a crash
    other = push(action, options, ids={"salesforce_id": lead}, key="c" * 32)  # another decision, same text

    assert len(sf_state.tasks) == 2
    assert again == first + " (created before; not created twice)"
    assert other != first and sf_state.tasks[0].fields["Priority"] == "Normal"
    lookup = sf_state.requests_to(f"{API}/query", "GET")[-1].query["q"][0]
    assert "WhoId = " in lookup and "Subject = 'Call back'" in lookup  # Description itself is not filterable


def test_task_key_in_a_custom_field_when_configured(options: dict[str, Any], sf_state: SalesforceState,
                                                    lead: str) -> None:
    options["task_key_field"] = "Crmrules_Key__c"
    action = {"type": "task", "title": "Call", "body": "본문"}
    push(action, options, ids={"salesforce_id": lead}, key="d" * 32)
    push(action, options, ids={"salesforce_id": lead}, key="d" * 32)

    [task] = sf_state.tasks
    assert task.fields["Crmrules_Key__c"] == "d" * 32 and task.fields["Description"] == "본문"
    lookup = sf_state.requests_to(f"{API}/query", "GET")[-1].query["q"][0]
    assert lookup == f"SELECT Id FROM Task WHERE Crmrules_Key__c = '{'d' * 32}' LIMIT 1"


@pytest.mark.parametrize("sobject,kind,extra", [("Account", "account", {"Name": "가나다"}),
                                                ("Opportunity", "deal", {"Name": "x", "StageName": "Prospecting",
                                                                         "CloseDate": "2030-01-01"})])
def test_task_on_account_or_deal_uses_what_id(options: dict[str, Any], sf_state: SalesforceState, sobject: str,
                                              kind: str, extra: dict[str, Any]) -> None:
    record = sf_state.add(sobject, extra).id
    push({"type": "task", "title": "갱신 준비"}, options, ids={"salesforce_id": record}, kind=kind)
    [task] = sf_state.tasks
    assert task.fields["WhatId"] == record and "WhoId" not in task.fields


def test_task_owner_by_id_or_configured_name(options: dict[str, Any], sf_state: SalesforceState, lead: str) -> None:
    user = sf_id("005", 42)
    options["owners"] = {"영업1팀": user}
    push({"type": "task", "title": "a", "owner": "영업1팀"}, options, ids={"salesforce_id": lead}, key="1" * 32)
    push({"type": "task", "title": "b", "owner": user[:15]}, options, ids={"salesforce_id": lead}, key="2" * 32)
    result = push({"type": "task", "title": "c", "owner": "nobody"}, options, ids={"salesforce_id": lead},
                  key="3" * 32)
    assert [t.fields.get("OwnerId") for t in sf_state.tasks] == [user, user, sf_standin.USER_ID]
    assert "owner 'nobody' not found" in result


def test_lead_known_only_by_email_is_found(options: dict[str, Any], sf_state: SalesforceState, lead: str) -> None:
    push({"type": "task", "title": "from the web"}, options, ids={"email": "KIM@example.com", "anonymous_id": "a"})
    assert sf_state.tasks[0].fields["WhoId"] == lead
    contact = sf_state.add("Contact", {"LastName": "김", "Email": "kim@example.com"}).id
    push({"type": "tag", "tag": "web"}, options, ids={"email": "kim@example.com"})
    assert sf_state.get("Contact", contact).fields["Crmrules_Tags__c"] == "web"  # a Contact wins over a Lead
    with pytest.raises(PushFailed, match="no Salesforce Contact or Lead"):
        push({"type": "tag", "tag": "web"}, options, ids={"email": "nobody@example.com"})
    with pytest.raises(PushFailed, match="no salesforce_id"):
        push({"type": "tag", "tag": "x"}, options, ids={"hubspot_id": "1"}, kind="account")


def test_converted_lead_writes_go_to_its_contact(options: dict[str, Any], sf_state: SalesforceState) -> None:
    contact = sf_state.add("Contact", {"LastName": "김"}).id
    lead = sf_state.add("Lead", {"LastName": "김", "Company": "가", "IsConverted": True,
                                 "ConvertedContactId": contact}).id

    push({"type": "task", "title": "after conversion"}, options, ids={"salesforce_id": lead})
    push({"type": "tag", "tag": "customer"}, options, ids={"salesforce_id": lead})
    sf_state.queue_fault(400, body=[{"message": "cannot reference converted lead",
                                     "errorCode": "CANNOT_UPDATE_CONVERTED_LEAD"}],
                         method="PATCH", path_prefix=f"{API}/sobjects/Lead/")
    result = push({"type": "set", "properties": {"Title": "대표"}}, options, ids={"salesforce_id": lead})

    assert sf_state.tasks[0].fields["WhoId"] == contact
    assert sf_state.get("Contact", contact).fields["Crmrules_Tags__c"] == "customer"
    assert result.startswith(f"Contact {contact}") and sf_state.get("Contact", contact).fields["Title"] == "대표"


# ---------------------------------------------------------------- messages

def test_message_becomes_an_email_task(options: dict[str, Any], sf_state: SalesforceState, lead: str) -> None:
    action = {"type": "message", "channel": "email", "subject": "(광고) 3월 세미나 초대",
              "body": "김유진님, 세미나에 초대합니다.", "locale": "ko"}
    push(action, options, ids={"salesforce_id": lead}, key="e" * 32)
    push(action, options, ids={"salesforce_id": lead}, key="e" * 32)

    [task] = sf_state.tasks
    assert task.fields["Subject"] == "(광고) 3월 세미나 초대"
    assert task.fields["Type"] == "Email" and task.fields["TaskSubtype"] == "Email"
    assert task.fields["Description"].startswith("김유진님, 세미나에 초대합니다.")


def test_other_channels_and_actions_are_not_supported_and_cost_no_call(options: dict[str, Any],
                                                                       sf_state: SalesforceState) -> None:
    ids = {"salesforce_id": sf_id("00Q", 1)}
    with pytest.raises(ActionNotSupported, match="channel 'sms'"):
        push({"type": "message", "channel": "sms", "body": "x"}, options, ids=ids)
    with pytest.raises(ActionNotSupported, match="webhook"):
        push({"type": "webhook", "url": "https://example.com"}, options, ids=ids)
    with pytest.raises(ActionNotSupported, match="chat_notify"):
        push({"type": "custom", "name": "chat_notify", "params": {}}, options, ids=ids)
    assert sf_state.requests == []


@pytest.fixture
def email_server() -> Iterator[RunningServer]:
    """The stand-in plus the REST `emailSimple` action (test-only addition: the shared stand-in lacks it)."""

    app = sf_standin.create_app(session_id=SESSION_ID, org_id=ORG_ID)
    sent: list[dict[str, Any]] = []
    app.config["SENT"] = sent

    @app.post("/services/data/v<version>/actions/standard/emailSimple")
    def email_simple(version: str):  # type: ignore[no-untyped-def]
        inputs = request.get_json()["inputs"]
        sent.extend(inputs)
        ok = all(i.get("emailAddresses") and i.get("emailSubject") for i in inputs)
        return app.response_class(json.dumps([{"actionName": "emailSimple", "errors": None if ok else [
            {"statusCode": "REQUIRED_FIELD_MISSING", "message": "emailSubject"}], "isSuccess": ok,
            "outputValues": None}]), mimetype="application/json")

    with serve(app) as server:
        yield server


def test_message_sent_through_the_email_action_once(email_server: RunningServer) -> None:
    state: SalesforceState = email_server.app.config["STATE"]
    lead = state.add("Lead", {"LastName": "김", "Company": "가", "Email": "kim@example.com"}).id
    options = {"message_mode": "email", "email_sender_type": "CurrentUser"}
    action = {"type": "message", "channel": "email", "subject": "견적서", "body": "견적서를 보내드립니다."}

    with through(sf_standin.rewriting_session(email_server.url, timeout=2)):
        first = push(action, options, ids={"salesforce_id": lead}, key="f" * 32)
        again = push(action, options, ids={"salesforce_id": lead}, key="f" * 32)

    assert email_server.app.config["SENT"] == [{"emailAddresses": "kim@example.com", "emailSubject": "견적서",
                                                "emailBody": "견적서를 보내드립니다.", "senderType": "CurrentUser"}]
    assert first.startswith("email sent to kim@example.com") and "not sent twice" in again
    [log] = state.tasks
    assert log.fields["Status"] == "Completed" and log.fields["Subject"] == "Email: 견적서"
    assert log.fields["WhoId"] == lead and marker("f" * 32) in log.fields["Description"]


# ---------------------------------------------------------------- failures

def test_request_limit_exceeded_is_retry_later(options: dict[str, Any], sf_state: SalesforceState,
                                               lead: str) -> None:
    sf_state.queue_request_limit_exceeded()
    with pytest.raises(RetryLater) as caught:
        push({"type": "set", "properties": {"Rating": "Hot"}}, options, ids={"salesforce_id": lead})
    assert "REQUEST_LIMIT_EXCEEDED" in caught.value.reason and caught.value.retry_after == 900
    assert sf_state.get("Lead", lead).fields.get("Rating") is None
    push({"type": "set", "properties": {"Rating": "Hot"}}, options, ids={"salesforce_id": lead})  # then it goes
    assert sf_state.get("Lead", lead).fields["Rating"] == "Hot"


def test_request_limit_while_creating_a_task_then_retry_creates_it_once(options: dict[str, Any],
                                                                        sf_state: SalesforceState,
                                                                        lead: str) -> None:
    sf_state.queue_request_limit_exceeded(path_prefix=f"{API}/sobjects/Task")
    action = {"type": "task", "title": "Call"}
    with pytest.raises(RetryLater):
        push(action, options, ids={"salesforce_id": lead})
    push(action, options, ids={"salesforce_id": lead})
    push(action, options, ids={"salesforce_id": lead})
    assert len(sf_state.tasks) == 1


@pytest.mark.parametrize("status,body", [
    (500, None), (503, None), (502, "<html>Bad Gateway</html>"),
    (400, [{"message": "unable to obtain exclusive access to this record", "errorCode": "UNABLE_TO_LOCK_ROW"}]),
    (401, None),
])
def test_passing_faults_are_retry_later(options: dict[str, Any], sf_state: SalesforceState, lead: str,
                                        status: int, body: Any) -> None:
    sf_state.queue_fault(status, body=body)
    with pytest.raises(RetryLater):
        push({"type": "set", "properties": {"Rating": "Hot"}}, options, ids={"salesforce_id": lead})


def test_timeout_is_retry_later(sf_server: RunningServer, sf_state: SalesforceState, lead: str) -> None:
    sf_state.queue_fault(delay=2.0)
    with through(sf_standin.rewriting_session(sf_server.url, timeout=0.3)), pytest.raises(RetryLater, match="in time"):
        push({"type": "set", "properties": {"Rating": "Hot"}}, {}, ids={"salesforce_id": lead})


def test_unreachable_salesforce_is_retry_later(lead: str) -> None:
    with through(sf_standin.rewriting_session("http://127.0.0.1:9", timeout=0.5)), \
            pytest.raises(RetryLater, match="unreachable"):
        push({"type": "set", "properties": {"Rating": "Hot"}}, {}, ids={"salesforce_id": sf_id("00Q", 1)})


def test_bad_data_is_push_failed_with_salesforces_message(options: dict[str, Any], sf_state: SalesforceState,
                                                          lead: str) -> None:
    sf_state.known_fields = {"Lead": {"LastName", "Company", "Email", "FirstName", "Rating"}}
    with pytest.raises(PushFailed) as caught:
        push({"type": "set", "properties": {"Nope__c": 1}}, options, ids={"salesforce_id": lead})
    assert not isinstance(caught.value, RetryLater)
    assert "INVALID_FIELD: No such column 'Nope__c' on sobject of type Lead" in str(caught.value)


def test_permission_refusal_is_push_failed(options: dict[str, Any], sf_state: SalesforceState, lead: str) -> None:
    sf_state.queue_fault(403, body=[{"message": "insufficient access rights on object id",
                                     "errorCode": "INSUFFICIENT_ACCESS_OR_READONLY"}])
    with pytest.raises(PushFailed, match="INSUFFICIENT_ACCESS_OR_READONLY"):
        push({"type": "set", "properties": {"Rating": "Hot"}}, options, ids={"salesforce_id": lead})


def test_deleted_record_is_push_failed(options: dict[str, Any], sf, lead: str) -> None:
    sf.Lead.delete(lead)
    with pytest.raises(PushFailed, match="not found"):
        push({"type": "tag", "tag": "x"}, options, ids={"salesforce_id": lead})
    with pytest.raises(PushFailed, match="NOT_FOUND"):
        push({"type": "set", "properties": {"Rating": "Hot"}}, options, ids={"salesforce_id": lead})


def test_missing_credentials_and_bad_settings_are_push_failed(options: dict[str, Any], lead: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="plugins.salesforce.tags_fild"):  # the dispatcher: a dead letter
        push({"type": "tag", "tag": "x"}, {**options, "tags_fild": "X__c"}, ids={"salesforce_id": lead})
    monkeypatch.delenv("SALESFORCE_SESSION_ID")
    with pytest.raises(PushFailed, match="no Salesforce credentials"):
        push({"type": "tag", "tag": "x"}, options, ids={"salesforce_id": lead})


def test_shadow_items_are_not_pushed(options: dict[str, Any], sf_state: SalesforceState) -> None:
    shadow = item({"type": "task", "title": "x"}, ids={"salesforce_id": sf_id("00Q", 1)})
    shadow.shadow = True
    assert plugins.push("salesforce", shadow, deployment(options)) == "shadow: not pushed"
    assert sf_state.requests == []
