"""Each HubSpot notification type → the crmrules events it stands for."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from crmrules_hubspot import properties
from crmrules_hubspot.settings import parse
from crmrules_hubspot.webhooks import to_events

from .conftest import PUBLIC_URL, Inbox, notification, receiver_app, signed_headers

OPTIONS = parse({})


def one(n: dict, options=OPTIONS):
    events, skipped = to_events([n], options)
    assert not skipped, skipped
    return events


def test_property_change_is_a_record_update_with_the_crmrules_name_at_occurred_at() -> None:
    [event] = one(notification("contact.propertyChange", object_id=1001, propertyName="firstname",
                               propertyValue="유진"))
    assert event.type == "record_update" and event.source == "hubspot"
    assert event.subject.kind == "lead" and event.subject.ids == {"hubspot_id": "1001"}
    assert event.properties == {"first_name": "유진"}
    assert event.occurred_at == dt.datetime.fromtimestamp(1_790_000_000.001, dt.timezone.utc)


def test_email_change_also_names_the_lead_by_email() -> None:
    [event] = one(notification("contact.propertyChange", propertyName="email", propertyValue="Kim@Example.com"))
    assert event.subject.ids == {"hubspot_id": "1001", "email": "Kim@Example.com"}
    assert event.properties == {"email": "Kim@Example.com"}


@pytest.mark.parametrize("name,value,expected", [
    ("hs_email_optout", "true", {"unsubscribed": True}),
    ("hs_timezone", "asia_slash_seoul", {"timezone": "Asia/Seoul"}),
    ("hs_timezone", "america_slash_port_of_spain", {"timezone": "America/Port_of_Spain"}),
    ("hs_language", "ko", {"locale": "ko"}),
    ("lastname", "김", {"last_name": "김"}),
    ("lead_note", "관심 높음", {"lead_note": "관심 높음"}),  # unmapped: keeps HubSpot's name
    ("firstname", None, {"first_name": None}),  # cleared in HubSpot
])
def test_property_names_and_values_are_mapped(name: str, value, expected) -> None:
    [event] = one(notification("contact.propertyChange", propertyName=name, propertyValue=value))
    assert event.properties == expected


def test_company_and_deal_changes_are_account_and_deal_updates() -> None:
    [company] = one(notification("company.propertyChange", object_id=5, propertyName="name", propertyValue="아크미"))
    [deal] = one(notification("deal.propertyChange", object_id=9, propertyName="dealstage",
                              propertyValue="closedwon"))
    assert (company.subject.kind, company.properties) == ("account", {"name": "아크미"})
    assert (deal.subject.kind, deal.subject.ids, deal.properties) == ("deal", {"hubspot_id": "9"},
                                                                      {"stage": "closedwon"})


def test_generic_object_webhooks_are_read_by_object_type_id() -> None:
    [event] = one(notification("object.propertyChange", objectTypeId="0-3", propertyName="amount",
                               propertyValue="1200000"))
    assert (event.subject.kind, event.properties) == ("deal", {"amount": "1200000"})


def test_property_map_setting_adds_names() -> None:
    options = parse({"property_map": {"contacts": {"kakao_id": "kakao_user"}}})
    [event] = one(notification("contact.propertyChange", propertyName="kakao_id", propertyValue="k1"), options)
    assert event.properties == {"kakao_user": "k1"}


def test_creation_sets_created_at_and_emits_created() -> None:
    update, created = one(notification("contact.creation", object_id=77))
    assert update.type == "record_update" and update.properties == {"created_at": update.occurred_at.isoformat()}
    assert created.type == "created" and created.properties == {"change_source": "CRM"}
    assert update.id != created.id and {update.subject.ids["hubspot_id"], created.subject.ids["hubspot_id"]} == {"77"}


def test_deletion_restore_and_privacy_deletion() -> None:
    [deleted] = one(notification("deal.deletion", object_id=9))
    [restored] = one(notification("deal.restore", object_id=9, event_id=2))
    [erased] = one(notification("contact.privacyDeletion", event_id=3))
    assert (deleted.type, deleted.subject.kind) == ("deleted", "deal")
    assert restored.type == "restored"
    assert erased.type == "deleted" and erased.properties["privacy"] is True


def test_merge_becomes_one_merge_event_per_merged_record() -> None:
    events = one(notification("contact.merge", object_id=1001, primaryObjectId=1001, mergedObjectIds=[1002, 1003],
                              numberOfPropertiesMoved=4))
    assert [e.type for e in events] == ["merge", "merge"]
    assert all(e.subject.ids == {"hubspot_id": "1001"} for e in events)
    assert [e.properties["merged_ids"] for e in events] == [{"hubspot_id": "1002"}, {"hubspot_id": "1003"}]
    assert len({e.id for e in events}) == 2


def test_merge_into_a_new_record_keeps_the_new_one() -> None:
    events = one(notification("contact.merge", primaryObjectId=1001, mergedObjectIds=[1002], newObjectId=1010))
    assert {e.subject.ids["hubspot_id"] for e in events} == {"1010"}
    assert sorted(e.properties["merged_ids"]["hubspot_id"] for e in events) == ["1001", "1002"]


def test_association_links_the_lead_to_its_company() -> None:
    [event] = one(notification("contact.associationChange", associationType="CONTACT_TO_COMPANY",
                               fromObjectId=1001, toObjectId=5, associationRemoved=False))
    assert event.type == "associated" and event.subject.ids == {"hubspot_id": "1001"}
    assert [(r.kind, r.ids) for r in event.related] == [("account", {"hubspot_id": "5"})]
    [removed] = one(notification("contact.associationChange", associationType="CONTACT_TO_COMPANY",
                                 fromObjectId=1001, toObjectId=5, associationRemoved=True, event_id=2))
    assert removed.type == "dissociated" and removed.related == []


def test_behavioural_event_notification_maps_names() -> None:
    options = parse({"event_names": {"pe62515_pricing_viewed": "page_view"}})
    [event] = one(notification("contact.behavioralEvent", eventName="pe62515_pricing_viewed",
                               properties={"path": "/pricing", "title": "가격"}), options)
    assert (event.type, event.properties) == ("page_view", {"path": "/pricing", "title": "가격"})
    [plain] = one(notification("contact.behavioralEvent", eventName="ebook_download", email="kim@example.com"))
    assert plain.type == "ebook_download" and plain.subject.ids == {"hubspot_id": "1001", "email": "kim@example.com"}


def test_event_ids_are_stable_across_redelivery_and_distinct_when_eventid_repeats() -> None:
    first = notification("contact.propertyChange", propertyName="firstname", propertyValue="A")
    again = {**first, "attemptNumber": 3}
    other_object = {**first, "objectId": 2002}  # HubSpot: eventId is not guaranteed unique
    ids = [one(n)[0].id for n in (first, again, other_object)]
    assert ids[0] == ids[1] and ids[0] != ids[2]


def test_unusable_notifications_are_counted_not_fatal() -> None:
    batch = [notification("ticket.creation"), notification("contact.propertyChange"),  # no propertyName
             "junk", notification("contact.deletion", portalId=999), notification("contact.deletion", event_id=5)]
    events, skipped = to_events(batch, parse({"portal_ids": [62515]}))
    assert [e.type for e in events] == ["deleted"]
    assert skipped == {"unmapped object type: ticket": 1, "malformed": 1, "not an object": 1,
                       "portal not in portal_ids": 1}


def test_redelivered_batch_is_accepted_but_nothing_is_new() -> None:
    inbox = Inbox()
    http = receiver_app({"public_url": PUBLIC_URL}, inbox).test_client()
    body = json.dumps([notification("contact.creation"),
                       notification("contact.propertyChange", event_id=2, propertyName="email",
                                    propertyValue="kim@example.com")]).encode()
    first = http.post("/hooks/hubspot", data=body, headers=signed_headers(body))
    again = http.post("/hooks/hubspot", data=body, headers=signed_headers(body))
    assert (first.status_code, first.json["new"]) == (200, 3)
    assert (again.status_code, again.json["new"], again.json["duplicates"]) == (200, 0, 3)
    assert len(inbox.events) == 3


def test_the_table_maps_every_crmrules_name_once_per_object() -> None:
    for object_type, fields in properties.FIELDS.items():
        names = [f.crmrules for f in fields]
        assert len(names) == len(set(names)), object_type


def test_readme_property_table_matches_the_code() -> None:
    """The README's table and `properties.FIELDS` are one table: a change to either must reach the other."""
    from pathlib import Path

    readme = (Path(properties.__file__).parent / "README.md").read_text(encoding="utf-8")
    rows = set()
    for line in readme.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in ("all", "contacts", "companies", "deals") and cells[1] != "HubSpot":
            for object_type in (properties.FIELDS if cells[0] == "all" else [cells[0]]):
                rows.add((object_type, cells[1], cells[2]))
    code = {(t, f.hubspot, f.crmrules) for t, fields in properties.FIELDS.items() for f in fields}
    assert rows == code
