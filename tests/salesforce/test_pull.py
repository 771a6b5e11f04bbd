"""Polling by SOQL on LastModifiedDate against the stand-in: order, cursor, pages, conversion, failures."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from crmrules.api import PullResult, RetryLater
from crmrules.plugins import get_registry
from crmrules_salesforce.poller import soql_datetime

from ..standins.salesforce import SalesforceState
from ..support import plugins
from .conftest import deployment, utc

T0 = utc(2030, 5, 1, 12, 0)


def pull(options: dict[str, Any], since: str | None = None) -> PullResult:
    return plugins.pull("salesforce", since, deployment(options))


def test_the_salesforce_source_is_registered_trusted_with_webhooks_and_a_pull() -> None:
    source = get_registry().sources["salesforce"]
    assert (source.trusted, source.plugin, source.blueprint is not None, source.pull is not None) == \
        (True, "salesforce", True, True)


def test_changes_of_every_sobject_in_event_time_order(options: dict[str, Any], sf_state: SalesforceState) -> None:
    account = sf_state.add("Account", {"Name": "가나다"}, last_modified=T0 + dt.timedelta(minutes=3))
    sf_state.add("Lead", {"LastName": "김", "Company": "가나다", "Email": "kim@example.com", "Rating": "Hot"},
                 last_modified=T0 + dt.timedelta(minutes=1))
    sf_state.add("Contact", {"LastName": "이", "AccountId": account.id}, last_modified=T0 + dt.timedelta(minutes=2))
    sf_state.add("Opportunity", {"Name": "갱신", "StageName": "Prospecting", "CloseDate": "2030-06-30",
                                 "Amount": 1000000, "AccountId": account.id},
                 last_modified=T0 + dt.timedelta(minutes=4))

    result = pull(options)

    assert [e.subject.kind for e in result.events] == ["lead", "lead", "account", "deal"]
    lead, contact, acct, deal = result.events
    assert lead.properties["Rating"] == "Hot" and lead.properties["email"] == "kim@example.com"
    assert lead.id == f"{lead.subject.ids['salesforce_id']}@{lead.properties['LastModifiedDate']}"
    assert contact.related[0].ids == {"salesforce_id": account.id}
    assert deal.properties["amount"] == 1000000 and deal.occurred_at == T0 + dt.timedelta(minutes=4)
    assert result.more is False
    soql = [r.query["q"][0] for r in sf_state.requests_to("/services/data/v59.0/query")]
    assert soql[0].startswith("SELECT Id, LastModifiedDate, Email, FirstName") and "FROM Lead" in soql[0]
    assert all("ORDER BY LastModifiedDate, Id" in q for q in soql)

    assert pull(options, result.cursor).events == []  # nothing changed since


def test_cursor_moves_past_what_was_seen(options: dict[str, Any], sf_state: SalesforceState) -> None:
    sf_state.add("Lead", {"LastName": "A", "Company": "x"}, last_modified=T0)
    first = pull(options)
    assert len(first.events) == 1
    changed = sf_state.add("Lead", {"LastName": "B", "Company": "x"}, last_modified=T0 + dt.timedelta(seconds=1))

    second = pull(options, first.cursor)

    assert [e.subject.ids["salesforce_id"] for e in second.events] == [changed.id]
    lead_query = sf_state.requests_to("/services/data/v59.0/query")[-4].query["q"][0]
    assert "WHERE LastModifiedDate > 2030-05-01T12:00:00Z OR (LastModifiedDate = 2030-05-01T12:00:00Z AND Id > '" \
        in lead_query


def test_pages_split_inside_one_timestamp_lose_nothing(options: dict[str, Any], sf_state: SalesforceState) -> None:
    options.update(pull_batch_size=2, pull_objects=["Lead"])
    made = {sf_state.add("Lead", {"LastName": f"L{i}", "Company": "x"}, last_modified=T0).id for i in range(5)}

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        result = pull(options, cursor)
        seen += [e.subject.ids["salesforce_id"] for e in result.events]
        cursor, pages = result.cursor, pages + 1
        if not result.more:
            break

    assert sorted(seen) == sorted(made) and len(seen) == 5 and pages == 3


def test_since_may_be_an_iso_time(options: dict[str, Any], sf_state: SalesforceState) -> None:
    options["pull_objects"] = ["Lead"]
    sf_state.add("Lead", {"LastName": "old", "Company": "x"}, last_modified=T0 - dt.timedelta(days=1))
    sf_state.add("Lead", {"LastName": "new", "Company": "x"}, last_modified=T0 + dt.timedelta(days=1))
    result = pull(options, "2030-05-01T21:00:00+09:00")  # = T0
    assert [e.properties["LastName"] for e in result.events] == ["new"]
    assert json.loads(result.cursor or "{}")["Lead"][1] == result.events[0].subject.ids["salesforce_id"]
    with pytest.raises(ValueError):
        pull(options, "last tuesday")


def test_a_converted_lead_pulls_with_its_merge(options: dict[str, Any], sf_state: SalesforceState) -> None:
    options["pull_objects"] = ["Lead"]
    contact = sf_state.add("Contact", {"LastName": "김"}, last_modified=T0)
    sf_state.add("Lead", {"LastName": "김", "Company": "x", "IsConverted": True, "ConvertedContactId": contact.id},
                 last_modified=T0)
    events = pull(options).events
    assert [e.type for e in events] == ["record_update", "merge"]
    assert events[1].subject.ids == {"salesforce_id": contact.id}


def test_pull_fields_are_configurable(options: dict[str, Any], sf_state: SalesforceState) -> None:
    options.update(pull_objects=["Account"], pull_fields={"Account": ["Name", "Tier__c"]})
    sf_state.add("Account", {"Name": "가나다", "Tier__c": "Gold", "Industry": "제조"}, last_modified=T0)
    [event] = pull(options).events
    assert event.properties["Tier__c"] == "Gold" and "Industry" not in event.properties


def test_request_limit_while_polling_is_retry_later(options: dict[str, Any], sf_state: SalesforceState) -> None:
    sf_state.queue_request_limit_exceeded()
    with pytest.raises(RetryLater):
        pull(options)


def test_literals() -> None:
    assert soql_datetime(utc(2030, 1, 2, 3, 4, 5)) == "2030-01-02T03:04:05Z"
    assert soql_datetime(dt.datetime(2030, 1, 2, 12, 4, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=9)))) \
        == "2030-01-02T03:04:05.123Z"
