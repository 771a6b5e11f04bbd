"""Segment messages → events: names, traits, ids, time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from crmrules.api import RECORD_UPDATE
from crmrules_web_tracker.segment import BadMessage, event_type, snake, to_event, to_events, traits_to_properties
from crmrules_web_tracker.settings import TrackerSettings, onsite_path, parse, seconds

OPTS = TrackerSettings(write_keys=["k"])
NOW = dt.datetime(2026, 1, 5, 0, 0, 10, tzinfo=dt.timezone.utc)


def msg(**fields):
    base = {"anonymousId": "anon-1", "messageId": "m-1", "timestamp": "2026-01-05T00:00:00.000Z"}
    return {**base, **fields}


@pytest.mark.parametrize("name, etype", [
    ("Product Viewed", "product_view"),
    ("Order Completed", "purchase"),
    ("eBook Downloaded", "ebook_download"),
    ("E-book Downloaded", "ebook_download"),
    ("Signed Up", "signup"),
    ("Products Searched", "search"),
    ("Pricing Page Viewed", "pricing_page_viewed"),
    ("productViewed", "product_view"),
    ("ProductViewed", "product_view"),
    ("PDFDownloaded", "pdf_downloaded"),
    ("iPhone Case Viewed", "iphone_case_viewed"),
    ("product_view", "product_view"),
    ("  Webinar -- Registered!  ", "webinar_registered"),
    ("상품 조회", "상품_조회"),
])
def test_event_names(name: str, etype: str) -> None:
    assert event_type(name) == etype


def test_event_name_overrides_and_reserved_names() -> None:
    assert event_type("Product Viewed", {"product viewed": "view_item"}) == "view_item"
    assert event_type("Demo Booked", {"Demo Booked": "meeting_booked"}) == "meeting_booked"
    for name in ("record_update", "Record Update", "merge", "Merge"):
        with pytest.raises(BadMessage, match="reserved"):
            event_type(name)
    with pytest.raises(BadMessage, match="no letters"):
        event_type("!!!")
    assert snake("Order  Completed") == "order_completed"


def test_track() -> None:
    event = to_event(msg(type="track", event="Product Viewed", properties={"product_id": "p1", "price": 19000}),
                     None, None, NOW, OPTS)
    assert (event.id, event.source, event.type) == ("m-1", "web", "product_view")
    assert event.subject.ids == {"anonymous_id": "anon-1"}
    assert event.properties == {"product_id": "p1", "price": 19000, "event_name": "Product Viewed",
                                 "product": "p1"}
    by_sku = to_event(msg(type="track", event="Product Added", properties={"sku": "S-1"}), None, None, NOW, OPTS)
    assert by_sku.type == "cart_add" and by_sku.properties["product"] == "S-1"
    own = to_event(msg(type="track", event="Product Viewed", properties={"product_id": "p1", "product": "desk"}),
                   None, None, NOW, OPTS)
    assert own.properties["product"] == "desk"
    assert event.occurred_at == dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)


def test_page_takes_the_page_context() -> None:
    context = {"page": {"path": "/pricing", "url": "https://shop.example/pricing?utm_source=x", "title": "가격",
                        "referrer": "https://search.example/", "search": "?utm_source=x"},
               "campaign": {"source": "newsletter", "medium": "email", "name": "spring"}}
    event = to_event(msg(type="page", name="Pricing", category="Docs", userId="u-1", context=context,
                         properties={"title": "가격 | Shop"}), "page", None, NOW, OPTS)
    assert event.type == "page_view"
    assert event.subject.ids == {"anonymous_id": "anon-1", "user_id": "u-1"}
    assert event.properties == {
        "path": "/pricing", "url": "https://shop.example/pricing?utm_source=x", "title": "가격 | Shop",
        "referrer": "https://search.example/", "search": "?utm_source=x", "name": "Pricing", "category": "Docs",
        "utm_source": "newsletter", "utm_medium": "email", "utm_name": "spring"}


def test_identify_stitches_and_maps_traits() -> None:
    traits = {"email": " Kim@Example.com ", "firstName": "유진", "lastName": "김", "phone": "010-1234-5678",
              "company": {"name": "Acme"}, "address": {"city": "Seoul", "postalCode": "04524", "geo": [1, 2]},
              "favouriteColour": "blue", "nested": {"a": 1}, "email_opt_in": True, "unsubscribed": False,
              "marketingConsent": True, "tags": ["vip"], "score": 100, "hubspot_id": "123", "doNotCall": False}
    event = to_event(msg(type="identify", userId="user-42", traits=traits), "identify", None, NOW, OPTS)
    assert event.type == RECORD_UPDATE
    assert event.subject.ids == {"anonymous_id": "anon-1", "user_id": "user-42", "email": "Kim@Example.com"}
    assert event.properties == {"email": "Kim@Example.com", "first_name": "유진", "last_name": "김",
                                "phone": "010-1234-5678", "company": "Acme", "city": "Seoul",
                                "postal_code": "04524", "favourite_colour": "blue"}


def test_identify_without_email_stitching_and_with_blocked_traits() -> None:
    opts = TrackerSettings(identity_traits=[], blocked_traits=["Phone"])
    event = to_event(msg(type="identify", traits={"email": "kim@example.com", "phone": "1"}), "identify", None,
                     NOW, opts)
    assert event.subject.ids == {"anonymous_id": "anon-1"}
    assert event.properties == {"email": "kim@example.com"}
    not_an_email = to_event(msg(type="identify", traits={"email": "kim at example"}), "identify", None, NOW, OPTS)
    assert not_an_email.subject.ids == {"anonymous_id": "anon-1"}


def test_group_alias_screen() -> None:
    group = to_event(msg(type="group", groupId="acme", traits={"name": "Acme", "industry": "제조"}), None, None,
                     NOW, OPTS)
    assert group.type == "group" and group.properties == {"group_id": "acme", "group_name": "Acme",
                                                          "group_industry": "제조"}
    alias = to_event(msg(type="alias", userId="u-2", previousId="anon-1"), "alias", None, NOW, OPTS)
    assert alias.type == "alias" and alias.subject.ids == {"anonymous_id": "anon-1", "user_id": "u-2"}
    assert alias.properties == {"previous_id": "anon-1"}
    screen = to_event(msg(type="screen", name="Home"), "screen", None, NOW, OPTS)
    assert screen.type == "screen_view" and screen.properties == {"name": "Home"}


@pytest.mark.parametrize("fields, reason", [
    ({"type": "page", "anonymousId": None}, "userId or an anonymousId"),
    ({"type": "page", "anonymousId": {"x": 1}}, "anonymousId must be a string"),
    ({"type": "page", "anonymousId": "a" * 300}, "longer than 256"),
    ({"type": "page", "userId": True}, "userId must be a string"),
    ({"type": "track"}, "needs an event name"),
    ({"type": "track", "event": "  "}, "needs an event name"),
    ({"type": "explode"}, "is not one of"),
    ({"type": "track", "event": "X", "properties": [1]}, "properties must be an object"),
    ({"type": "track", "event": "X", "timestamp": "2026-01-05T09:00:00"}, "has no time zone"),
    ({"type": "track", "event": "X", "timestamp": "yesterday"}, "is not an ISO 8601 time"),
    ({"type": "track", "event": "X", "timestamp": 1767571200}, "must be an ISO 8601 time"),
    ({"type": "group"}, "needs a groupId"),
    ({"type": "alias"}, "needs a previousId"),
])
def test_bad_messages(fields: dict, reason: str) -> None:
    with pytest.raises(BadMessage, match=reason):
        to_event(msg(**fields), None, None, NOW, OPTS)


def test_endpoint_type_wins_and_must_agree() -> None:
    assert to_event(msg(event="X"), "track", None, NOW, OPTS).type == "x"
    with pytest.raises(BadMessage, match="posted to the track endpoint"):
        to_event(msg(type="page"), "track", None, NOW, OPTS)


def test_time_zone_offsets_are_kept() -> None:
    event = to_event(msg(type="track", event="X", timestamp="2026-01-05T09:00:05+09:00"), None, None, NOW, OPTS)
    assert event.occurred_at.utcoffset() == dt.timedelta(hours=9)
    assert event.occurred_at == dt.datetime(2026, 1, 5, 0, 0, 5, tzinfo=dt.timezone.utc)


def test_time_falls_back_to_sent_at_then_arrival() -> None:
    no_ts = {k: v for k, v in msg(type="track", event="X").items() if k != "timestamp"}
    assert to_event(no_ts, None, "2026-01-05T00:00:09Z", NOW, OPTS).occurred_at == NOW - dt.timedelta(seconds=1)
    assert to_event(no_ts, None, None, NOW, OPTS).occurred_at == NOW
    original = {**no_ts, "originalTimestamp": "2026-01-05T00:00:01Z"}
    assert to_event(original, None, None, NOW, OPTS).occurred_at == NOW - dt.timedelta(seconds=9)


def test_a_wrong_client_clock_is_corrected_by_sent_at() -> None:
    # The browser's clock is an hour fast: it stamped the event 5 s before sending, per its own clock.
    fast = msg(type="track", event="X", timestamp="2026-01-05T00:59:55Z", sentAt="2026-01-05T01:00:00Z")
    assert to_event(fast, None, None, NOW, OPTS).occurred_at == NOW - dt.timedelta(seconds=5)
    # Within the tolerance nothing is corrected.
    ok = msg(type="track", event="X", timestamp="2026-01-05T00:00:00Z", sentAt="2026-01-05T00:00:20Z")
    assert to_event(ok, None, None, NOW, OPTS).occurred_at == NOW - dt.timedelta(seconds=10)
    # A time in the future with no sentAt to correct it by becomes the arrival time.
    future = msg(type="track", event="X", timestamp="2027-01-01T00:00:00Z")
    assert to_event(future, None, None, NOW, OPTS).occurred_at == NOW
    # An old event (an import of history) keeps its time.
    old = msg(type="track", event="X", timestamp="2025-06-01T00:00:00Z")
    assert to_event(old, None, None, NOW, OPTS).occurred_at.year == 2025


def test_message_id_is_the_event_id_or_a_content_hash() -> None:
    a = {k: v for k, v in msg(type="track", event="X").items() if k != "messageId"}
    first = to_event({**a, "sentAt": "2026-01-05T00:00:01Z"}, None, None, NOW, OPTS)
    again = to_event({**a, "sentAt": "2026-01-05T00:00:02Z"}, None, None, NOW, OPTS)
    assert first.id == again.id and first.id.startswith("wt-")
    assert to_event({**a, "event": "Y"}, None, None, NOW, OPTS).id != first.id


def test_batch() -> None:
    body = {"batch": [msg(type="identify", messageId="m1", userId="u", traits={"email": "a@b.co"}),
                      msg(type="track", messageId="m2", event="Order Completed", properties={"total": 1})],
            "sentAt": "2026-01-05T00:00:10Z", "context": {"library": {"name": "analytics-python"}},
            "writeKey": "k"}
    events = to_events(body, None, NOW, OPTS)
    assert [(e.id, e.type) for e in events] == [("m1", RECORD_UPDATE), ("m2", "purchase")]
    with pytest.raises(BadMessage, match=r"batch\[1\]: a message needs"):
        to_events({"batch": [msg(type="page"), {"type": "page"}]}, None, NOW, OPTS)
    with pytest.raises(BadMessage, match=r"batch\[0\] is \d+ bytes"):
        to_events({"batch": [msg(type="track", event="X", properties={"x": "y" * 40_000})]}, None, NOW, OPTS)
    with pytest.raises(BadMessage, match="needs \"batch\""):
        to_events({"messages": []}, None, NOW, OPTS)


def test_traits_none_and_wrong_type() -> None:
    assert traits_to_properties(None, OPTS) == {}
    with pytest.raises(BadMessage):
        traits_to_properties(["email"], OPTS)


def test_settings() -> None:
    assert seconds("30d") == 30 * 86400 and seconds(90) == 90 and seconds("15m") == 900
    opts = parse({"write_keys": [" k1 ", ""], "onsite_ttl": "7d", "clock_skew": "2m"})
    assert opts.write_keys == ["k1"] and opts.onsite_ttl == 7 * 86400 and opts.clock_skew == 120
    with pytest.raises(ValueError, match="plugins.web_tracker.onsite_lookup"):
        parse({"onsite_lookup": ["email"]})
    with pytest.raises(ValueError, match="plugins.web_tracker.write_keys"):
        parse({"write_keys": ["a:b"]})
    with pytest.raises(ValueError, match="plugins.web_tracker.rate_burst"):
        parse({"rate_burst": 0})
    with pytest.raises(ValueError, match="plugins.web_tracker.wrte_keys"):
        parse({"wrte_keys": ["k"]})


def test_onsite_path() -> None:
    folder = Path("/var/lib/crmrules/main.plugins/web_tracker")
    assert onsite_path(TrackerSettings(), folder) == "/var/lib/crmrules/main.plugins/web_tracker/onsite.sqlite"
    assert onsite_path(TrackerSettings(onsite_store="o.db"), folder) == str(folder / "o.db")
    assert onsite_path(TrackerSettings(onsite_store="/data/o.db"), folder) == "/data/o.db"
    assert onsite_path(TrackerSettings(onsite_store=":memory:"), folder) == ":memory:"
