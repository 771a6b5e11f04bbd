"""The Salesforce stand-in, driven by the REAL simple-salesforce over loopback HTTP.

These double as executable documentation of simple-salesforce's behaviour:
which exception each status becomes, what it sends, and that it never retries.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.api import DEFAULT_API_VERSION
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from .salesforce import SalesforceState, parse_sf_datetime, rewriting_session, sf_datetime, sf_id

API = f"/services/data/v{DEFAULT_API_VERSION}"


def _lead(sf: Salesforce, **fields: str) -> str:
    result = sf.Lead.create({"LastName": "Kim", "Company": "Acme", **fields})
    assert result["success"] is True and result["errors"] == []
    return result["id"]


def test_default_api_version_and_https_rewrite(sf: Salesforce, salesforce_state: SalesforceState) -> None:
    assert DEFAULT_API_VERSION == "59.0"
    _lead(sf)
    original = sf.session.original_urls[-1]
    assert original == f"https://example.my.salesforce.com{API}/sobjects/Lead/"
    seen = salesforce_state.requests_to(f"{API}/sobjects/Lead", "POST")[-1]
    assert seen.header("Authorization") == "Bearer test-session"
    assert seen.status == 201


def test_create_task_with_who_id_pointing_at_lead(sf: Salesforce, salesforce_state: SalesforceState) -> None:
    lead_id = _lead(sf, Email="kim@example.com")
    assert lead_id.startswith("00Q") and len(lead_id) == 18

    created = sf.Task.create({"Subject": "Call back", "WhoId": lead_id, "ActivityDate": "2030-01-02"})

    [task] = salesforce_state.tasks
    assert task.id == created["id"] and task.id.startswith("00T")
    assert task.fields["WhoId"] == lead_id
    assert task.fields["Status"] == "Not Started"          # org default filled in
    fetched = sf.Task.get(created["id"])
    assert fetched["attributes"] == {"type": "Task", "url": f"{API}/sobjects/Task/{created['id']}"}
    assert fetched["WhoId"] == lead_id


def test_task_who_id_of_wrong_type_or_missing_record_is_rejected(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as wrong_type:
        sf.Task.create({"Subject": "x", "WhoId": sf_id("001", 9)})
    assert wrong_type.value.content[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    with pytest.raises(SalesforceMalformedRequest) as missing:
        sf.Task.create({"Subject": "x", "WhoId": sf_id("00Q", 999)})
    assert missing.value.content[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


def test_required_and_read_only_fields(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as missing:
        sf.Lead.create({"LastName": "Kim"})
    assert missing.value.content == [{"message": "Required fields are missing: [Company]",
                                      "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Company"]}]
    lead_id = _lead(sf)
    with pytest.raises(SalesforceMalformedRequest) as read_only:
        sf.Lead.update(lead_id, {"LastModifiedDate": "2030-01-01T00:00:00.000+0000"})
    assert read_only.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_update_lead_with_korean_text(sf: Salesforce, salesforce_state: SalesforceState) -> None:
    lead_id = _lead(sf)
    before = salesforce_state.get("Lead", lead_id).fields["LastModifiedDate"]

    status = sf.Lead.update(lead_id, {"Description": "관심 높음", "Rating": "Hot"})

    assert status == 204
    assert sf.Lead.get(lead_id)["Description"] == "관심 높음"
    assert salesforce_state.updates[-1].fields == {"Description": "관심 높음", "Rating": "Hot"}
    assert salesforce_state.get("Lead", lead_id).fields["LastModifiedDate"] >= before
    assert sf.query(f"SELECT Description FROM Lead WHERE Id = '{lead_id}'")["records"][0]["Description"] \
        == "관심 높음"


def test_soql_last_modified_after_cursor(sf: Salesforce, salesforce_state: SalesforceState) -> None:
    cursor = datetime(2030, 5, 1, 12, 0, tzinfo=timezone.utc)
    salesforce_state.add("Lead", {"LastName": "Old", "Company": "A"}, last_modified=cursor - timedelta(seconds=1))
    salesforce_state.add("Lead", {"LastName": "Same", "Company": "A"}, last_modified=cursor)
    newer = [salesforce_state.add("Lead", {"LastName": f"New{i}", "Company": "A"},
                                  last_modified=cursor + timedelta(minutes=3 - i)) for i in range(3)]
    literal = cursor.strftime("%Y-%m-%dT%H:%M:%SZ")

    result = sf.query(f"SELECT Id, LastName, LastModifiedDate FROM Lead "
                      f"WHERE LastModifiedDate > {literal} ORDER BY LastModifiedDate LIMIT 10")

    assert result["done"] is True and result["totalSize"] == 3
    assert [r["Id"] for r in result["records"]] == [r.id for r in reversed(newer)]
    assert result["records"][0]["LastModifiedDate"] == sf_datetime(cursor + timedelta(minutes=1))
    assert set(result["records"][0]) == {"attributes", "Id", "LastName", "LastModifiedDate"}
    # An offset literal means the same instant; a quoted value is an error, as in Salesforce.
    seoul = (cursor + timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%S+09:00")
    assert sf.query(f"SELECT Id FROM Lead WHERE LastModifiedDate > {seoul}")["totalSize"] == 3
    with pytest.raises(SalesforceMalformedRequest) as quoted:
        sf.query(f"SELECT Id FROM Lead WHERE LastModifiedDate > '{literal}'")
    assert quoted.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_soql_paging_with_next_records_url(sf: Salesforce, salesforce_state: SalesforceState) -> None:
    salesforce_state.query_batch_size = 2     # test knob; real Salesforce pages at 200..2000
    for i in range(5):
        salesforce_state.add("Lead", {"LastName": f"L{i}", "Company": "A"})

    first = sf.query("SELECT Id FROM Lead ORDER BY LastName DESC")
    assert first["done"] is False and first["totalSize"] == 5 and len(first["records"]) == 2
    assert first["nextRecordsUrl"].startswith(f"{API}/query/01g")

    everything = sf.query_all("SELECT Id, LastName FROM Lead ORDER BY LastName DESC")
    assert [r["LastName"] for r in everything["records"]] == ["L4", "L3", "L2", "L1", "L0"]
    assert any(u.startswith(f"https://example.my.salesforce.com{API}/query/01g")
               for u in sf.session.original_urls)


def test_soql_unsupported_parts_fail_loudly(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Who.Name FROM Task")
    assert "stand-in limitation" in caught.value.content[0]["message"]
    with pytest.raises(SalesforceMalformedRequest) as bad_type:
        sf.query("SELECT Id FROM Nope__c")
    assert bad_type.value.content[0]["errorCode"] == "INVALID_TYPE"


def test_request_limit_exceeded_is_refused_request(sf: Salesforce, salesforce_state: SalesforceState) -> None:
    salesforce_state.queue_fault(403)   # default body: REQUEST_LIMIT_EXCEEDED

    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.Lead.create({"LastName": "Kim", "Company": "Acme"})

    error = caught.value
    assert error.status == 403
    assert error.content == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert salesforce_state.leads == []
    assert len(salesforce_state.requests) == 1          # simple-salesforce never retries


def test_invalid_session_and_server_errors(salesforce_server, salesforce_state: SalesforceState) -> None:
    session = rewriting_session(salesforce_server.url, timeout=5)
    stale = Salesforce(instance="example.my.salesforce.com", session_id="expired", session=session)
    with pytest.raises(SalesforceExpiredSession) as caught:
        stale.query("SELECT Id FROM Lead")
    assert caught.value.content[0]["errorCode"] == "INVALID_SESSION_ID"

    good = Salesforce(instance="example.my.salesforce.com", session_id="test-session", session=session)
    for status in (500, 503):
        salesforce_state.queue_fault(status, headers={"Retry-After": "1"})
        with pytest.raises(SalesforceGeneralError) as server_error:
            good.query("SELECT Id FROM Lead")
        assert server_error.value.status == status
    with pytest.raises(SalesforceResourceNotFound):
        good.Lead.get(sf_id("00Q", 4242))
    good.query("SELECT Id FROM Lead")               # only successful calls update api_usage
    assert good.api_usage["api-usage"].total == 15000
    assert good.api_usage["api-usage"].used == len(salesforce_state.requests)


def test_slow_response_hits_session_timeout(salesforce_server, salesforce_state: SalesforceState) -> None:
    session = rewriting_session(salesforce_server.url, timeout=0.3)
    client = Salesforce(instance="example.my.salesforce.com", session_id="test-session", session=session)
    salesforce_state.queue_fault(delay=2.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.Lead.create({"LastName": "Slow", "Company": "Acme"})


def test_fifteen_char_ids_and_delete(sf: Salesforce, salesforce_state: SalesforceState) -> None:
    lead_id = _lead(sf)
    assert sf.Lead.get(lead_id[:15])["Id"] == lead_id
    assert sf.Lead.delete(lead_id) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.get(lead_id)
    assert parse_sf_datetime(salesforce_state.get("Lead", lead_id).fields["CreatedDate"]) is not None
    assert sf.query("SELECT Id FROM Lead")["totalSize"] == 0
    assert sf.query_all("SELECT Id, IsDeleted FROM Lead", include_deleted=True)["records"][0]["IsDeleted"] is True
