"""The hubspot source's pull(since, context): records modified since a cursor, via the CRM search API, as record_update events."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from crmrules.api import PullResult, RetryLater
from crmrules.plugins import get_registry

from ..standins.hubspot import HubSpotState
from ..support import plugins

BASE = dt.datetime(2030, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


def ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def pull(since, settings) -> PullResult:
    result = plugins.pull("hubspot", since, settings)
    assert isinstance(result, PullResult)
    return result


def test_the_hubspot_source_is_registered_trusted_with_webhooks_and_a_pull() -> None:
    source = get_registry().sources["hubspot"]
    assert (source.trusted, source.plugin, source.blueprint is not None, source.pull is not None) == \
        (True, "hubspot", True, True)
    assert "hubspot" in get_registry().trusted_sources()


def test_pull_returns_modified_records_mapped_and_a_cursor(settings, hubspot_state: HubSpotState) -> None:
    settings["plugins"]["hubspot"]["poll_overlap"] = 0
    hubspot_state.add("contacts", {"email": "old@example.com"}, updated_at=BASE - dt.timedelta(hours=2))
    kim = hubspot_state.add("contacts", {"email": "kim@example.com", "firstname": "유진", "lastname": "김",
                                         "hs_email_optout": "false", "hs_timezone": "asia_slash_seoul"},
                            updated_at=BASE + dt.timedelta(minutes=1))
    acme = hubspot_state.add("companies", {"name": "아크미", "domain": "acme.example"},
                             updated_at=BASE + dt.timedelta(minutes=2))
    deal = hubspot_state.add("deals", {"dealname": "갱신", "dealstage": "contractsent", "amount": "1200000"},
                             updated_at=BASE + dt.timedelta(minutes=3))

    result = pull(BASE.isoformat(), settings)

    assert [(e.subject.kind, e.subject.ids.get("hubspot_id")) for e in result.events] == [
        ("lead", kim.id), ("account", acme.id), ("deal", deal.id)]
    lead, account, opportunity = result.events
    assert lead.type == "record_update" and lead.source == "hubspot"
    assert lead.subject.ids == {"hubspot_id": kim.id, "email": "kim@example.com"}
    assert lead.occurred_at == BASE + dt.timedelta(minutes=1)
    assert {k: lead.properties[k] for k in ("first_name", "last_name", "unsubscribed", "timezone")} == {
        "first_name": "유진", "last_name": "김", "unsubscribed": False, "timezone": "Asia/Seoul"}
    assert account.properties["name"] == "아크미" and account.properties["domain"] == "acme.example"
    assert opportunity.properties["stage"] == "contractsent" and opportunity.properties["amount"] == "1200000"
    assert "hs_object_id" not in lead.properties
    assert json.loads(result.cursor) == {"contacts": ms(BASE) + 60_000, "companies": ms(BASE) + 120_000,
                                         "deals": ms(BASE) + 180_000}
    assert result.more is False

    assert "phone" not in lead.properties  # empty in HubSpot: not a reason to clear what crmrules knows

    # Nothing new: the same cursor comes back. The filter is GTE (ties at the cursor's millisecond are not
    # lost), so the records at the cursor are read again, with the same event ids, and the inbox drops them.
    again = pull(result.cursor, settings)
    assert json.loads(again.cursor) == json.loads(result.cursor)
    assert {e.id for e in again.events} <= {e.id for e in result.events}


def test_search_request_filters_sorts_and_pages(settings, hubspot_state: HubSpotState) -> None:
    settings["plugins"]["hubspot"].update(poll_objects=["contacts"], poll_page_size=2)
    for i in range(5):
        hubspot_state.add("contacts", {"email": f"n{i}@example.com"}, updated_at=BASE + dt.timedelta(seconds=i))
    result = pull(str(ms(BASE)), settings)
    assert len(result.events) == 5
    searches = hubspot_state.requests_to("/crm/v3/objects/contacts/search")
    assert len(searches) == 3
    body = searches[0].json
    flt = body["filterGroups"][0]["filters"][0]
    assert (flt["propertyName"], flt["operator"]) == ("lastmodifieddate", "GTE")
    assert body["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    assert "firstname" in body["properties"] and body["limit"] == 2


def test_overlap_rereads_with_the_same_event_ids(settings, hubspot_state: HubSpotState) -> None:
    """Search lags writes, so each pull re-reads a minute before its cursor; re-read records keep their
    event id (object + id + modification time), so the inbox drops them."""
    settings["plugins"]["hubspot"]["poll_objects"] = ["deals"]
    hubspot_state.add("deals", {"dealname": "a"}, updated_at=BASE)
    first = pull(str(ms(BASE) - 1), settings)
    second = pull(first.cursor, settings)
    assert [e.id for e in second.events] == [e.id for e in first.events]


def test_budget_reached_says_more(settings, hubspot_state: HubSpotState) -> None:
    settings["plugins"]["hubspot"].update(poll_objects=["contacts"], poll_page_size=2, poll_max_records=3,
                                          poll_overlap=0)
    for i in range(6):
        hubspot_state.add("contacts", {"email": f"m{i}@example.com"}, updated_at=BASE + dt.timedelta(seconds=i))
    first = pull(str(ms(BASE)), settings)
    assert first.more is True and len(first.events) == 4
    rest = pull(first.cursor, settings)
    assert rest.more is False
    assert {e.subject.ids["email"] for e in first.events + rest.events} == {f"m{i}@example.com" for i in range(6)}


def test_first_pull_without_a_cursor_reads_everything(settings, hubspot_state: HubSpotState) -> None:
    settings["plugins"]["hubspot"]["poll_objects"] = ["companies"]
    hubspot_state.add("companies", {"name": "옛날"}, updated_at=dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc))
    assert len(pull(None, settings).events) == 1


def test_pull_rate_limited_is_retry_later(settings, hubspot_state: HubSpotState) -> None:
    hubspot_state.queue_rate_limit(retry_after=4)
    with pytest.raises(RetryLater) as caught:
        pull(None, settings)
    assert caught.value.retry_after == 4


def test_since_needs_a_time_zone(settings) -> None:
    with pytest.raises(ValueError, match="time zone"):
        pull("2030-05-01T12:00:00", settings)
