"""The HubSpot stand-in, driven by the REAL hubspot-api-client over loopback HTTP.

These double as executable documentation of how the client behaves: which
exception class a status becomes, where headers land, what is retried.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
import urllib3
from hubspot import HubSpot
from hubspot.crm import companies as hs_companies
from hubspot.crm import contacts as hs_contacts
from hubspot.crm import deals as hs_deals
from hubspot.crm.objects import notes as hs_notes
from hubspot.crm.objects import tasks as hs_tasks
from hubspot.crm.associations import v4 as hs_assoc_v4
from hubspot.marketing import transactional as hs_transactional
from hubspot.utils.signature import Signature
from hubspot.exceptions import InvalidSignatureTimestampError

from .hubspot import ASSOCIATION_TYPE_IDS, HubSpotState, iso


def _contact(client: HubSpot, **props: str) -> str:
    created = client.crm.contacts.basic_api.create(
        hs_contacts.SimplePublicObjectInputForCreate(properties=props))
    return created.id


def test_create_task_associated_to_contact(hubspot_client: HubSpot, hubspot_state: HubSpotState) -> None:
    contact_id = _contact(hubspot_client, email="kim@example.com", firstname="민수")
    task_input = hs_tasks.SimplePublicObjectInputForCreate(
        properties={"hs_task_subject": "Call back", "hs_task_status": "NOT_STARTED",
                    "hs_timestamp": "2030-01-02T03:04:05Z", "hs_task_priority": "HIGH"},
        associations=[hs_tasks.PublicAssociationsForObject(
            to=hs_tasks.PublicObjectId(id=contact_id),
            types=[hs_tasks.AssociationSpec(association_category="HUBSPOT_DEFINED",
                                            association_type_id=ASSOCIATION_TYPE_IDS[("tasks", "contacts")])])])

    task = hubspot_client.crm.objects.tasks.basic_api.create(task_input)

    assert ASSOCIATION_TYPE_IDS[("tasks", "contacts")] == 204
    assert task.properties["hs_task_subject"] == "Call back"
    assert task.properties["hs_timestamp"] == "2030-01-02T03:04:05.000Z"
    [stored] = hubspot_state.tasks
    assert stored.id == task.id
    [link] = hubspot_state.associations_of("tasks", task.id)
    assert (link.to_type, link.to_id, link.type_id) == ("contacts", contact_id, 204)

    fetched = hubspot_client.crm.objects.tasks.basic_api.get_by_id(
        task.id, properties=["hs_task_subject", "hs_task_status"])
    assert fetched.properties["hs_task_status"] == "NOT_STARTED"
    sent = hubspot_state.requests_to("/crm/v3/objects/tasks", method="POST")[0]
    assert sent.json["associations"][0]["types"][0] == {
        "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}


def test_task_without_hs_timestamp_is_rejected_like_hubspot(hubspot_client: HubSpot) -> None:
    with pytest.raises(hs_tasks.ApiException) as caught:
        hubspot_client.crm.objects.tasks.basic_api.create(
            hs_tasks.SimplePublicObjectInputForCreate(properties={"hs_task_subject": "x"}))
    assert caught.value.status == 400
    assert json.loads(caught.value.body)["category"] == "VALIDATION_ERROR"


def test_association_to_missing_record_is_rejected(hubspot_client: HubSpot) -> None:
    bad = hs_tasks.SimplePublicObjectInputForCreate(
        properties={"hs_timestamp": "1700000000000"},
        associations=[hs_tasks.PublicAssociationsForObject(
            to=hs_tasks.PublicObjectId(id="999999"),
            types=[hs_tasks.AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=204)])])
    with pytest.raises(hs_tasks.ApiException) as caught:
        hubspot_client.crm.objects.tasks.basic_api.create(bad)
    assert caught.value.status == 400


def test_update_contact_korean_text_round_trips(hubspot_client: HubSpot, hubspot_state: HubSpotState) -> None:
    contact_id = _contact(hubspot_client, email="lee@example.com")
    update = hs_contacts.SimplePublicObjectInput(properties={"lead_note": "관심 높음", "lifecyclestage": "lead"})

    updated = hubspot_client.crm.contacts.basic_api.update(contact_id, update)

    assert updated.properties["lead_note"] == "관심 높음"
    fetched = hubspot_client.crm.contacts.basic_api.get_by_id(contact_id, properties=["lead_note"])
    assert fetched.properties["lead_note"] == "관심 높음"
    assert hubspot_state.get("contacts", contact_id).properties["lead_note"] == "관심 높음"
    assert hubspot_state.property_updates[-1].properties == {"lead_note": "관심 높음", "lifecyclestage": "lead"}


def test_get_unknown_contact_is_not_found(hubspot_client: HubSpot) -> None:
    with pytest.raises(hs_contacts.exceptions.NotFoundException) as caught:
        hubspot_client.crm.contacts.basic_api.get_by_id("424242")
    assert caught.value.status == 404


def test_search_contacts_modified_since_with_paging(hubspot_client: HubSpot, hubspot_state: HubSpotState) -> None:
    base = datetime(2030, 5, 1, 12, 0, tzinfo=timezone.utc)
    old = hubspot_state.add("contacts", {"email": "old@example.com"}, updated_at=base - timedelta(hours=1))
    fresh = [hubspot_state.add("contacts", {"email": f"n{i}@example.com"}, updated_at=base + timedelta(minutes=i))
             for i in range(5)]
    cursor_ms = str(int(base.timestamp() * 1000))

    def page(after: str | None) -> hs_contacts.CollectionResponseWithTotalSimplePublicObjectForwardPaging:
        request = hs_contacts.PublicObjectSearchRequest(
            filter_groups=[hs_contacts.FilterGroup(filters=[
                hs_contacts.Filter(property_name="lastmodifieddate", operator="GTE", value=cursor_ms)])],
            sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            properties=["email"], limit=2, after=after)
        return hubspot_client.crm.contacts.search_api.do_search(request)

    seen, after = [], None
    while True:
        result = page(after)
        assert result.total == 5
        seen += [r.id for r in result.results]
        if result.paging is None:
            break
        after = result.paging.next.after
    assert seen == [c.id for c in fresh]
    assert old.id not in seen
    assert result.results[-1].properties["lastmodifieddate"] == iso(base + timedelta(minutes=4))


def test_search_accepts_iso_values_and_gt_on_hs_lastmodifieddate(
        hubspot_client: HubSpot, hubspot_state: HubSpotState) -> None:
    base = datetime(2030, 5, 1, tzinfo=timezone.utc)
    hubspot_state.add("deals", {"dealname": "A"}, updated_at=base)
    later = hubspot_state.add("deals", {"dealname": "B"}, updated_at=base + timedelta(seconds=1))

    result = hubspot_client.crm.deals.search_api.do_search(hs_deals.PublicObjectSearchRequest(
        filter_groups=[hs_deals.FilterGroup(filters=[hs_deals.Filter(
            property_name="hs_lastmodifieddate", operator="GT", value=iso(base))])]))
    assert [r.id for r in result.results] == [later.id]


def test_search_visibility_delay_hides_fresh_writes(hubspot_client: HubSpot, hubspot_state: HubSpotState) -> None:
    hubspot_state.search_visibility_delay = 60
    _contact(hubspot_client, email="new@example.com")
    result = hubspot_client.crm.contacts.search_api.do_search(hs_contacts.PublicObjectSearchRequest())
    assert result.total == 0


def test_rate_limit_surfaces_as_api_exception_with_retry_after(
        hubspot_client: HubSpot, hubspot_state: HubSpotState) -> None:
    contact_id = _contact(hubspot_client, email="rl@example.com")
    hubspot_state.queue_fault(status=429, headers={"Retry-After": "2"})

    with pytest.raises(hs_contacts.ApiException) as caught:
        hubspot_client.crm.contacts.basic_api.update(
            contact_id, hs_contacts.SimplePublicObjectInput(properties={"x": "1"}))

    error = caught.value
    assert error.status == 429
    assert error.headers["Retry-After"] == "2"        # urllib3 HTTPHeaderDict: case-insensitive
    assert error.headers["retry-after"] == "2"
    body = json.loads(error.body)
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
    # Not retried by default: exactly one PATCH reached the stand-in, and nothing changed.
    assert len(hubspot_state.requests_to(f"/crm/v3/objects/contacts/{contact_id}", "PATCH")) == 1
    assert "x" not in hubspot_state.get("contacts", contact_id).properties


def test_each_api_package_has_its_own_exception_class(hubspot_client: HubSpot, hubspot_state: HubSpotState) -> None:
    hubspot_state.queue_rate_limit(retry_after=1, path_prefix="/crm/v3/objects/tasks")
    with pytest.raises(hs_tasks.ApiException) as caught:
        hubspot_client.crm.objects.tasks.basic_api.create(
            hs_tasks.SimplePublicObjectInputForCreate(properties={"hs_timestamp": "1700000000000"}))
    assert caught.value.status == 429
    assert not isinstance(caught.value, hs_contacts.ApiException)  # catch per package, or OpenApiException bases


def test_idempotent_methods_are_silently_retried_on_429_with_retry_after(
        hubspot_client: HubSpot, hubspot_state: HubSpotState) -> None:
    """No retry configured, yet urllib3's default Retry(3) re-sends GET/PUT/DELETE that got 429/503
    with a Retry-After header (sleeping for it). POST/PATCH are never re-sent."""
    contact_id = _contact(hubspot_client, email="auto@example.com")
    hubspot_state.queue_fault(status=429, headers={"Retry-After": "0"})
    fetched = hubspot_client.crm.contacts.basic_api.get_by_id(contact_id)
    assert fetched.id == contact_id
    statuses = [r.status for r in hubspot_state.requests_to(f"/crm/v3/objects/contacts/{contact_id}", "GET")]
    assert statuses == [429, 200]

    hubspot_state.queue_fault(status=429)  # no Retry-After: not retried
    with pytest.raises(hs_contacts.ApiException):
        hubspot_client.crm.contacts.basic_api.get_by_id(contact_id)

    hubspot_state.queue_fault(status=429, headers={"Retry-After": "0"}, times=4)  # 1 try + 3 retries
    with pytest.raises(hs_contacts.ApiException) as caught:
        hubspot_client.crm.contacts.basic_api.get_by_id(contact_id)
    assert caught.value.status == 429


def test_server_errors_and_auth_errors_map_to_subclasses(hubspot_state: HubSpotState, hubspot_server) -> None:
    hubspot_state.queue_fault(status=500)
    good = HubSpot(access_token="test-token", host=hubspot_server.url)
    with pytest.raises(hs_contacts.exceptions.ServiceException) as caught:
        good.crm.contacts.basic_api.get_by_id("1")
    assert caught.value.status == 500

    bad = HubSpot(access_token="wrong", host=hubspot_server.url)
    with pytest.raises(hs_contacts.exceptions.UnauthorizedException) as caught_auth:
        bad.crm.contacts.basic_api.get_by_id("1")
    assert json.loads(caught_auth.value.body)["category"] == "INVALID_AUTHENTICATION"


def test_retry_config_retries_429_only_when_asked(hubspot_state: HubSpotState, hubspot_server) -> None:
    """urllib3 Retry passed as HubSpot(retry=...) honours Retry-After, but POST is not retried by default."""
    retry = urllib3.util.Retry(total=2, status_forcelist=[429], backoff_factor=0,
                               allowed_methods=None)  # None = retry every method, POST included
    client = HubSpot(access_token="test-token", host=hubspot_server.url, retry=retry)
    hubspot_state.queue_fault(status=429, headers={"Retry-After": "0"})
    created = client.crm.contacts.basic_api.create(
        hs_contacts.SimplePublicObjectInputForCreate(properties={"email": "retry@example.com"}))
    assert created.id
    statuses = [r.status for r in hubspot_state.requests_to("/crm/v3/objects/contacts", "POST")]
    assert statuses == [429, 201]


def test_slow_response_times_out_as_raw_urllib3_errors(hubspot_client: HubSpot, hubspot_state: HubSpotState) -> None:
    """Timeouts are NOT ApiException. A timed-out POST may still have been applied by the server."""
    hubspot_state.queue_fault(delay=1.0)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        hubspot_client.crm.contacts.basic_api.create(
            hs_contacts.SimplePublicObjectInputForCreate(properties={"email": "slow@example.com"}),
            _request_timeout=0.3)
    assert len(hubspot_state.requests_to("/crm/v3/objects/contacts", "POST")) == 1
    deadline = time.monotonic() + 3
    while not hubspot_state.objects["contacts"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [c.properties["email"] for c in hubspot_state.objects["contacts"].values()] == ["slow@example.com"]

    hubspot_state.queue_fault(delay=1.0, times=4)
    with pytest.raises(urllib3.exceptions.MaxRetryError):  # GET: re-sent 3 times, then gives up
        hubspot_client.crm.contacts.basic_api.get_by_id("1", _request_timeout=0.3)
    assert len(hubspot_state.requests_to("/crm/v3/objects/contacts/1", "GET")) == 4


def test_idempotency_header_is_recorded(hubspot_client: HubSpot, hubspot_state: HubSpotState) -> None:
    hubspot_client.crm.contacts.basic_api.create(
        hs_contacts.SimplePublicObjectInputForCreate(properties={"email": "idem@example.com"}),
        _headers={"X-Idempotency-Key": "rule-7:event-42"})
    seen = hubspot_state.requests_to("/crm/v3/objects/contacts", "POST")[-1]
    assert seen.header("x-idempotency-key") == "rule-7:event-42"
    assert seen.header("Authorization") == "Bearer test-token"


def test_duplicate_contact_email_conflicts(hubspot_client: HubSpot) -> None:
    _contact(hubspot_client, email="dup@example.com")
    with pytest.raises(hs_contacts.ApiException) as caught:
        _contact(hubspot_client, email="DUP@example.com")
    assert caught.value.status == 409


def test_note_with_associations_and_default_v4_association(
        hubspot_client: HubSpot, hubspot_state: HubSpotState) -> None:
    contact_id = _contact(hubspot_client, email="note@example.com")
    company = hubspot_client.crm.companies.basic_api.create(
        hs_companies.SimplePublicObjectInputForCreate(properties={"name": "Acme", "domain": "acme.example"}))
    note = hubspot_client.crm.objects.notes.basic_api.create(hs_notes.SimplePublicObjectInputForCreate(
        properties={"hs_note_body": "메모", "hs_timestamp": "1700000000000"},
        associations=[hs_notes.PublicAssociationsForObject(
            to=hs_notes.PublicObjectId(id=contact_id),
            types=[hs_notes.AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=202)])]))
    assert hubspot_state.associations_of("notes", note.id)[0].to_id == contact_id

    result = hubspot_client.crm.associations.v4.basic_api.create_default(
        "contact", contact_id, "company", company.id)
    assert isinstance(result, hs_assoc_v4.BatchResponsePublicDefaultAssociation)
    assert result.status == "COMPLETE"
    assert {r.association_spec.association_type_id for r in result.results} == {279, 280}


def test_communication_requires_channel_and_logged_from(hubspot_client: HubSpot) -> None:
    from hubspot.crm.objects import communications as hs_comms

    with pytest.raises(hs_comms.ApiException):
        hubspot_client.crm.objects.communications.basic_api.create(
            hs_comms.SimplePublicObjectInputForCreate(properties={"hs_communication_body": "hi"}))
    created = hubspot_client.crm.objects.communications.basic_api.create(
        hs_comms.SimplePublicObjectInputForCreate(properties={
            "hs_communication_channel_type": "SMS", "hs_communication_logged_from": "CRM",
            "hs_communication_body": "안녕하세요", "hs_timestamp": "2030-01-01T00:00:00Z"}))
    assert created.properties["hs_communication_body"] == "안녕하세요"


def test_transactional_single_send(hubspot_client: HubSpot, hubspot_state: HubSpotState) -> None:
    status = hubspot_client.marketing.transactional.single_send_api.send_email(
        hs_transactional.PublicSingleSendRequestEgg(
            email_id=12345, message=hs_transactional.PublicSingleSendEmail(to="kim@example.com", send_id="s-1"),
            contact_properties={"firstname": "민수"}))
    assert status.status == "PENDING" and status.status_id
    assert hubspot_state.emails_sent[0]["message"]["to"] == "kim@example.com"
    assert hubspot_state.emails_sent[0]["contactProperties"] == {"firstname": "민수"}


def test_faults_can_target_a_path_prefix(hubspot_client: HubSpot, hubspot_state: HubSpotState) -> None:
    hubspot_state.queue_fault(status=503, path_prefix="/marketing/", times=2)
    _contact(hubspot_client, email="unaffected@example.com")          # not a /marketing/ call
    assert hubspot_state.pending_faults == 2


def test_webhook_v3_signature_helper() -> None:
    """How HubSpot's v3 webhook signature is produced and checked with the client's helper."""
    secret, method = "app-client-secret", "POST"
    uri = "https://hooks.example.com/hubspot/webhook?portal=1"
    body = json.dumps([{"objectId": 1, "propertyName": "lead_note", "propertyValue": "관심 높음"}],
                      ensure_ascii=False)
    timestamp = str(int(time.time() * 1000))                        # X-HubSpot-Request-Timestamp (ms)
    signature = Signature.get_signature(secret, body, "v3", http_uri=uri, http_method=method,
                                        timestamp=timestamp)        # X-HubSpot-Signature-v3
    assert Signature.is_valid(signature, secret, body, http_uri=uri, http_method=method,
                              signature_version="v3", timestamp=timestamp)
    assert not Signature.is_valid(signature, secret, body + " ", http_uri=uri, http_method=method,
                                  signature_version="v3", timestamp=timestamp)
    stale = str(int((time.time() - 600) * 1000))
    with pytest.raises(InvalidSignatureTimestampError):
        Signature.is_valid(signature, secret, body, http_uri=uri, http_method=method,
                           signature_version="v3", timestamp=stale)
