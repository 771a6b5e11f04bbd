"""Flow HTTP callouts through the real receiver app: the shared secret, the payload, deduplication."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ..standins.salesforce import sf_id
from .conftest import FLOW_SECRET, Receiver

FLOW = "/hooks/salesforce/flow"
LEAD = sf_id("00Q", 1)


def post(receiver: Receiver, body: Any, secret: str | None = FLOW_SECRET, header: str = "X-Crmrules-Secret"):
    headers = {header: secret} if secret is not None else {}
    return receiver.post(FLOW, json.dumps(body, ensure_ascii=False).encode("utf-8"), headers=headers,
                         content_type="application/json")


def lead_record(**fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Lead", "url": f"/services/data/v59.0/sobjects/Lead/{LEAD}"}, "Id": LEAD,
            **fields}


def test_record_update_from_a_flow(receiver: Receiver) -> None:
    body = {"event": "record_update", "occurred_at": "2030-02-03T04:05:06.000+0000",
            "record": lead_record(Email="kim@example.com", LastName="김", Rating="Hot", NumberOfEmployees=120)}

    response = post(receiver, body)

    assert response.status_code == 200 and response.get_json() == {"accepted": 1, "duplicates": 0}
    [(_seq, event)] = receiver.store.pending()
    assert event.type == "record_update" and event.source == "salesforce" and event.id.startswith("flow:")
    assert event.subject.ids == {"salesforce_id": LEAD, "email": "kim@example.com"}
    assert event.occurred_at.isoformat() == "2030-02-03T04:05:06+00:00"
    assert event.properties["Rating"] == "Hot" and event.properties["NumberOfEmployees"] == 120
    assert "attributes" not in event.properties


def test_same_callout_twice_is_stored_once(receiver: Receiver) -> None:
    body = {"event": "record_update", "record": lead_record(Rating="Hot"), "occurred_at": "2030-01-01T00:00:00Z"}
    assert post(receiver, body).get_json() == {"accepted": 1, "duplicates": 0}
    assert post(receiver, body).get_json() == {"accepted": 0, "duplicates": 1}
    with_id = dict(body, id="interview-1")
    assert post(receiver, with_id).get_json()["accepted"] == 1
    assert post(receiver, dict(with_id, occurred_at="2030-01-01T00:00:01Z")).get_json()["duplicates"] == 1


def test_custom_event_with_properties_and_batch(receiver: Receiver) -> None:
    contact = sf_id("003", 9)
    body = {"events": [
        {"event": "demo_requested", "record": {"Id": contact, "Email": "lee@example.com"},
         "properties": {"product": "분석 플랫폼"}, "occurred_at": 1_900_000_000_000},
        {"event": "record_update", "sobject": "Opportunity",
         "record": {"Id": sf_id("006", 3), "StageName": "Closed Won", "AccountId": sf_id("001", 4)}},
    ]}

    assert post(receiver, body).get_json() == {"accepted": 2, "duplicates": 0}
    (_, demo), (_, deal) = receiver.store.pending()
    assert demo.type == "demo_requested" and demo.properties == {"product": "분석 플랫폼"}
    assert demo.subject.kind == "lead" and demo.occurred_at.year == 2030
    assert deal.subject.kind == "deal" and deal.properties["stage"] == "Closed Won"
    assert deal.related[0].ids == {"salesforce_id": sf_id("001", 4)}


def test_converted_lead_from_a_flow_also_merges(receiver: Receiver) -> None:
    contact = sf_id("003", 2)
    post(receiver, {"record": lead_record(IsConverted=True, ConvertedContactId=contact[:15])})
    events = [e for _, e in receiver.store.pending()]
    assert [e.type for e in events] == ["record_update", "merge"]
    assert events[1].subject.ids == {"salesforce_id": contact}  # the 15-character id, made 18
    assert events[1].properties["merged_ids"] == {"salesforce_id": LEAD}


@pytest.mark.parametrize("secret,header,status", [
    (None, "X-Crmrules-Secret", 401), ("wrong", "X-Crmrules-Secret", 401), (FLOW_SECRET[:-1], "X-Crmrules-Secret", 401),
    (f"Bearer {FLOW_SECRET}", "Authorization", 200), ("Bearer nope", "Authorization", 401),
])
def test_shared_secret(receiver: Receiver, secret: str | None, header: str, status: int) -> None:
    response = post(receiver, {"record": lead_record()}, secret=secret, header=header)
    assert response.status_code == status
    if status == 401:
        assert receiver.inbox() == 0 and "X-Crmrules-Secret" in response.get_json()["error"]


def test_without_a_configured_secret_nothing_is_accepted(receiver: Receiver,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SALESFORCE_FLOW_SECRET")
    response = post(receiver, {"record": lead_record()}, secret="")
    assert response.status_code == 503 and "SALESFORCE_FLOW_SECRET" in response.get_json()["error"]


@pytest.mark.parametrize("body,why", [
    ({"record": {"Name": "no id"}}, "sObject type"),
    ({"record": {"Id": sf_id("500", 1)}}, "sObject type"),
    ({"record": lead_record(), "occurred_at": "yesterday"}, "occurred_at"),
    ({"record": lead_record(), "occurred_at": "2030-01-01T00:00:00"}, "occurred_at"),
    ({"event": "has space", "record": lead_record()}, "type"),
    ({"record": "00Q..."}, "record"),
    ({"events": []}, "events"),
    ([1, 2], "expected an object"),
])
def test_bad_payloads_are_refused(receiver: Receiver, body: Any, why: str) -> None:
    response = post(receiver, body)
    assert response.status_code == 400 and why in response.get_json()["error"]
    assert receiver.inbox() == 0


def test_not_json_is_refused(receiver: Receiver) -> None:
    response = receiver.post(FLOW, b"<xml/>", headers={"X-Crmrules-Secret": FLOW_SECRET},
                             content_type="application/json")
    assert response.status_code == 400


def test_secret_header_name_is_configurable(tmp_path) -> None:
    receiver = Receiver(tmp_path, {"flow_secret_header": "X-Flow-Key"})
    try:
        assert post(receiver, {"record": lead_record()}, header="X-Flow-Key").status_code == 200
        assert post(receiver, {"record": lead_record(A=1)}).status_code == 401
    finally:
        receiver.close()
