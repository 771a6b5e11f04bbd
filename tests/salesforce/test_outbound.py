"""Outbound Messages through the real receiver app: parsing, the exact ACK, org id checks, hostile XML,
deduplication of a redelivered envelope, and Lead → Contact conversion landing on one crmrules lead."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from xml.etree import ElementTree

import pytest

from crmrules_salesforce import soap
from crmrules_salesforce.records import to18

from ..standins.salesforce import sf_id
from .conftest import Receiver
from .envelopes import ACK, ORG_ID, envelope, lead_envelope, notification, notification_id

OUTBOUND = "/hooks/salesforce/outbound"
LEAD = sf_id("00Q", 1)
CONTACT = sf_id("003", 2)
ACCOUNT = sf_id("001", 3)


def test_lead_notification_becomes_record_update_and_is_acked(receiver: Receiver) -> None:
    body = lead_envelope(LEAD, Email="Kim@Example.com", FirstName="유진", LastName="김", Company="가나다",
                         Rating="Hot", Phone=None, LastModifiedDate="2030-03-04T05:06:07.000Z")

    response = receiver.post(OUTBOUND, body)

    assert response.status_code == 200
    assert response.data == ACK
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    [(_seq, event)] = receiver.store.pending()
    assert event.source == "salesforce" and event.id == notification_id(1) and event.type == "record_update"
    assert event.subject.kind == "lead"
    assert event.subject.ids == {"salesforce_id": LEAD, "email": "Kim@Example.com"}
    assert event.occurred_at == dt.datetime(2030, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
    props = event.properties
    assert props["Rating"] == "Hot" and props["rating"] == "Hot"
    assert props["FirstName"] == "유진" and props["first_name"] == "유진" and props["last_name"] == "김"
    assert props["Phone"] is None and props["salesforce_object"] == "Lead"


def test_ack_is_the_envelope_salesforce_documents() -> None:
    root = ElementTree.fromstring(soap.ACK)
    assert root.tag == "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"
    ack = root.find("{http://schemas.xmlsoap.org/soap/envelope/}Body/"
                    "{http://soap.sforce.com/2005/09/outbound}notificationsResponse/"
                    "{http://soap.sforce.com/2005/09/outbound}Ack")
    assert ack is not None and ack.text == "true"


@pytest.mark.parametrize("sobject,kind,prefix", [("Contact", "lead", "003"), ("Account", "account", "001"),
                                                 ("Opportunity", "deal", "006")])
def test_each_sobject_maps_to_its_kind(receiver: Receiver, sobject: str, kind: str, prefix: str) -> None:
    record_id = sf_id(prefix, 7)
    fields = {"Id": record_id, "Name": "Acme 주식회사", "AccountId": ACCOUNT, "StageName": "Prospecting"}
    response = receiver.post(OUTBOUND, envelope([notification(notification_id(5), sobject, fields)]))

    assert response.status_code == 200 and response.data == ACK
    [(_seq, event)] = receiver.store.pending()
    assert event.subject.kind == kind and event.subject.ids == {"salesforce_id": record_id}
    if sobject in ("Contact", "Opportunity"):
        assert [(r.kind, r.ids) for r in event.related] == [("account", {"salesforce_id": ACCOUNT})]
    if sobject == "Opportunity":
        assert event.properties["stage"] == "Prospecting" and event.properties["name"] == "Acme 주식회사"


@pytest.mark.parametrize("org", [ORG_ID, ORG_ID[:15]])
def test_configured_org_id_may_be_15_or_18_characters(tmp_path: Path, org: str) -> None:
    receiver = Receiver(tmp_path, {"organization_id": org})
    try:
        assert receiver.post(OUTBOUND, lead_envelope(LEAD)).status_code == 200
    finally:
        receiver.close()


@pytest.mark.parametrize("sent", ["00D000000000002AAA", "00d000000000001AAA", "00D000000000001aaa",
                                  "00D000000000002", "00D0000000", ""])
def test_other_org_is_rejected_and_nothing_is_stored(receiver: Receiver, sent: str) -> None:
    response = receiver.post(OUTBOUND, envelope([notification(notification_id(1), "Lead", {"Id": LEAD})],
                                                org_id=sent))
    assert response.status_code == (400 if not sent else 403)
    assert ("OrganizationId" if not sent else "organization") in response.get_json()["error"]
    assert receiver.inbox() == 0


def test_own_org_in_15_characters_is_accepted(receiver: Receiver) -> None:
    body = envelope([notification(notification_id(1), "Lead", {"Id": LEAD})], org_id=ORG_ID[:15])
    assert receiver.post(OUTBOUND, body).data == ACK


def test_org_id_must_be_configured(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path, {})
    try:
        response = receiver.post(OUTBOUND, lead_envelope(LEAD))
        assert response.status_code == 503 and "organization_id" in response.get_json()["error"]
    finally:
        receiver.close()


BILLION_LAUGHS = ('<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                  '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
                  '<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>')
EXTERNAL = '<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
EXTERNAL_DTD = '<!DOCTYPE foo SYSTEM "http://127.0.0.1:9/evil.dtd">'


@pytest.mark.parametrize("prolog,field", [(BILLION_LAUGHS, "&lol4;"), (EXTERNAL, "&xxe;"), (EXTERNAL_DTD, "x")])
def test_doctype_and_entities_are_refused_without_expanding_or_fetching(receiver: Receiver, prolog: str,
                                                                        field: str) -> None:
    body = envelope([notification(notification_id(1), "Lead", {"Id": LEAD}).replace(
        "</sObject>", f"<sf:Description>{field}</sf:Description></sObject>")], prolog=prolog)

    response = receiver.post(OUTBOUND, body)

    assert response.status_code == 400
    assert "DTD" in response.get_json()["error"]
    assert receiver.inbox() == 0


@pytest.mark.parametrize("body,why", [
    (b"", "empty"), (b"<not-closed>", "well-formed"), (b'{"json": true}', "well-formed"),
    (b"<a/>", "SOAP"),
    (b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body/>'
     b"</soapenv:Envelope>", "notifications"),
])
def test_malformed_bodies_are_refused(receiver: Receiver, body: bytes, why: str) -> None:
    response = receiver.post(OUTBOUND, body)
    assert response.status_code == 400 and why in response.get_json()["error"]


def test_unsupported_sobject_is_refused_so_the_admin_sees_it_in_salesforce(receiver: Receiver) -> None:
    body = envelope([notification(notification_id(1), "Case", {"Id": sf_id("500", 1)})])
    response = receiver.post(OUTBOUND, body)
    assert response.status_code == 400 and "Case" in response.get_json()["error"]


def test_outbound_token_when_configured(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESFORCE_OUTBOUND_TOKEN", "t0k3n")
    assert receiver.post(OUTBOUND, lead_envelope(LEAD)).status_code == 401
    assert receiver.post(OUTBOUND + "?token=wrong", lead_envelope(LEAD)).status_code == 401
    assert receiver.post(OUTBOUND + "?token=t0k3n", lead_envelope(LEAD)).data == ACK


def test_redelivered_envelope_of_100_ingests_only_new_notifications_and_still_acks(receiver: Receiver) -> None:
    def hundred(start: int) -> bytes:
        return envelope([notification(notification_id(n), "Lead",
                                      {"Id": sf_id("00Q", n), "Email": f"p{n}@example.com", "LastName": f"L{n}",
                                       "Company": "가나다"}) for n in range(start, start + 100)])

    first = receiver.post(OUTBOUND, envelope([notification(notification_id(n), "Lead", {"Id": sf_id("00Q", n)})
                                              for n in range(1, 41)]))
    assert first.data == ACK and receiver.inbox() == 40

    again = receiver.post(OUTBOUND, hundred(1))  # 40 seen before, 60 new

    assert again.status_code == 200 and again.data == ACK
    assert receiver.inbox() == 100
    assert receiver.post(OUTBOUND, hundred(1)).data == ACK  # the whole envelope once more: nothing new
    assert receiver.inbox() == 100
    assert receiver.process() == 100
    assert len(receiver.leads()) == 100


def test_more_than_100_notifications_is_not_an_outbound_message(receiver: Receiver) -> None:
    body = envelope([notification(notification_id(n), "Lead", {"Id": sf_id("00Q", n)}) for n in range(101)])
    assert receiver.post(OUTBOUND, body).status_code == 400


def test_body_over_the_cap_is_refused(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path, {"organization_id": ORG_ID}, max_body_bytes=2000)
    try:
        body = envelope([notification(notification_id(n), "Lead", {"Id": sf_id("00Q", n)}) for n in range(30)])
        assert receiver.post(OUTBOUND, body).status_code == 413
    finally:
        receiver.close()


def test_converted_lead_and_its_contact_are_one_crmrules_lead(receiver: Receiver) -> None:
    # The Lead was seen first (with its history), then the Contact on its own, then the conversion.
    receiver.post(OUTBOUND, lead_envelope(LEAD, nid=notification_id(1), Email="kim@example.com", LastName="김",
                                          Rating="Warm", LastModifiedDate="2030-01-01T00:00:00.000Z"))
    receiver.post(OUTBOUND, envelope([notification(notification_id(2), "Contact", {
        "Id": CONTACT, "LastName": "김", "Title": "대표", "AccountId": ACCOUNT,
        "LastModifiedDate": "2030-01-02T00:00:00.000Z"})]))
    receiver.process()
    assert len(receiver.leads()) == 2

    converted = lead_envelope(LEAD, nid=notification_id(3), IsConverted=True, ConvertedContactId=CONTACT,
                              ConvertedAccountId=ACCOUNT, LastModifiedDate="2030-01-03T00:00:00.000Z")
    assert receiver.post(OUTBOUND, converted).data == ACK
    assert receiver.post(OUTBOUND, converted).data == ACK  # redelivered: nothing twice
    receiver.process()

    [(entity_id, _kind, state)] = receiver.leads()
    assert state["props"]["Title"] == "대표" and state["props"]["Rating"] == "Warm"
    assert state["identities"]["salesforce_id"] == CONTACT  # pushes go to the record that lives on
    assert receiver.store.find_entity(LEAD) == entity_id == receiver.store.find_entity(CONTACT)
    assert receiver.store.find_entity("kim@example.com") == entity_id


def test_fifteen_character_ids_are_the_same_record() -> None:
    assert to18(LEAD[:15]) == LEAD and to18(LEAD) == LEAD
    assert to18("001A0000006Vm9r") == "001A0000006Vm9rIAC"


def test_endpoints_are_described_in_openapi(receiver: Receiver) -> None:
    paths = receiver.client.get("/openapi.json").get_json()["paths"]
    assert paths["/hooks/salesforce/outbound"]["post"]["operationId"] == "salesforceOutboundMessage"
    assert "requestBody" in paths["/hooks/salesforce/flow"]["post"]
