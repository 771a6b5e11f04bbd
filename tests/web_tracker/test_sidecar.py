"""The web tracker inside the real `crmrules serve` (a subprocess: waitress, worker thread, dispatcher), found
through its entry point like any installed plugin, driven by the stock Segment clients over HTTP."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmrules.api import RECORD_UPDATE
from crmrules.store import SQLiteStore
from crmrules_web_tracker.onsite import OnsiteStore
from tests.support.browser import GuardedContext, serve
from tests.web_tracker.stack import TEST_PACK, WRITE_KEY, wait_until

sidecar_support = pytest.importorskip("tests.support.sidecar")

CONFIG = {"rules": [str(TEST_PACK)], "targets": {"message.onsite": "web_tracker"},
          "plugins": {"web_tracker": {"write_keys": [WRITE_KEY], "allowed_origins": ["*"]}}}


@pytest.fixture
def real_sidecar(tmp_path: Path) -> Iterator:
    sidecar = sidecar_support.start_sidecar(tmp_path, CONFIG)
    try:
        yield sidecar
    finally:
        sidecar.stop()


def stores(sidecar) -> tuple[SQLiteStore, OnsiteStore]:
    folder = Path(sidecar.store_path).parent / "crmrules.plugins" / "web_tracker"
    return SQLiteStore(sidecar.store_path), OnsiteStore(str(folder / "onsite.sqlite"))


def settled(store: SQLiteStore) -> bool:
    counts = store.inbox_counts()
    return counts.get("pending", 0) == 0 and sum(counts.values()) > 0


@pytest.mark.parametrize("use_gzip", [False, True], ids=["plain", "gzip"])
def test_python_client_to_the_real_sidecar(real_sidecar, use_gzip: bool) -> None:
    from segment.analytics import Client  # type: ignore[import-untyped]

    errors: list[Exception] = []
    client = Client(WRITE_KEY, host=real_sidecar.url, gzip=use_gzip, upload_interval=0.05, max_retries=0,
                    on_error=lambda exc, batch: errors.append(exc))
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    try:
        for n in range(3):
            client.track(anonymous_id="anon-py", event="Product Viewed", properties={"product_id": f"p{n}"},
                         timestamp=start + dt.timedelta(minutes=n), message_id=f"py-{n}")
        client.identify(user_id="user-py", anonymous_id="anon-py", traits={"email": "py@example.com"},
                        timestamp=start + dt.timedelta(minutes=5), message_id="py-identify")
        client.track(anonymous_id="anon-py", event="Product Viewed", message_id="py-0")  # a resend
        client.flush()
    finally:
        client.shutdown()
    assert errors == []

    store, onsite = stores(real_sidecar)
    wait_until(lambda: settled(store) and onsite.rows(), 15, lambda: f"inbox {store.inbox_counts()}, "
               f"outbox {store.outbox_counts()}, onsite {onsite.rows()}")
    [(lead_id, _kind, state)] = store.entities("lead")
    assert state["identities"] == {"anonymous_id": "anon-py", "user_id": "user-py"}
    assert state["claims"] == {"email": "py@example.com"}  # the tracker's word only: see test_trust.py
    types = sorted(e.type for e in store.events_of(lead_id))
    assert types == sorted(["product_view"] * 3 + [RECORD_UPDATE])

    # The snippet's calls, as the browser makes them.
    status, headers, body = real_sidecar.get(f"/v1/onsite?writeKey={WRITE_KEY}&anonymousId=anon-py")
    assert status == 200, body
    [message] = json.loads(body)["messages"]
    assert "WELCOME10" in message["body"]
    status, _, body = real_sidecar.post("/v1/onsite/shown", {"writeKey": WRITE_KEY, "anonymousId": "anon-py",
                                                             "ids": [message["id"]]},
                                        headers={"Content-Type": "text/plain"})
    assert (status, json.loads(body)) == (200, {"success": True, "marked": 1})
    status, _, body = real_sidecar.get(f"/v1/onsite?writeKey={WRITE_KEY}&anonymousId=anon-py")
    assert json.loads(body) == {"messages": []}


def test_refusals_of_the_real_sidecar(real_sidecar) -> None:
    bad_key = {"Authorization": "Basic " + base64.b64encode(b"wk_wrong:").decode(), "Origin": "http://shop.test"}
    status, headers, body = real_sidecar.post("/v1/t", {"type": "track", "event": "X", "anonymousId": "a"},
                                              headers=bad_key)
    assert status == 401 and json.loads(body)["message"] == "unknown write key"
    assert headers["Access-Control-Allow-Origin"] == "http://shop.test"
    good = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    status, _, body = real_sidecar.post("/v1/t", {"type": "track", "event": "X", "anonymousId": "a",
                                                  "timestamp": "2026-01-05T09:00:00"}, headers=good)
    assert status == 400 and "has no time zone" in json.loads(body)["message"]
    status, _, body = real_sidecar.get("/metrics")
    assert b'crmrules_events_total{result="rejected",source="web_tracker"} 2.0' in body, body.decode()


@pytest.mark.browser
def test_browser_coupon_through_the_real_sidecar(real_sidecar, browser_thread, offline: GuardedContext,
                                                 analytics_next_umd: Path) -> None:
    from tests.web_tracker.browserthread import Visitor
    from tests.web_tracker.site import shop_app

    store, onsite = stores(real_sidecar)
    with serve(shop_app(analytics_next_umd, real_sidecar.url, WRITE_KEY)) as shop:
        visitor = Visitor(browser_thread, offline, shop)
        shown = [visitor.visit(f"/products/{n}") for n in (1, 2, 3)]
        assert shown[:2] == ["0", "0"]
        if shown[2] == "0":
            # The live worker usually decides after this page asked; then the next page shows it. When it
            # decides first, the third product page itself shows it — once either way.
            wait_until(lambda: onsite.rows(), 15, lambda: f"no coupon; outbox {store.outbox_rows()}")
            assert visitor.visit("/account") == "1"
        else:
            assert shown[2] == "1" and visitor.visit("/account") == "0"
        wait_until(lambda: onsite.rows()[0]["shown_at"] is not None, 5, lambda: "never marked shown")
        assert visitor.reload() == "0"
        assert visitor.visit("/products/4") == "0"
        wait_until(lambda: settled(store) and len(store.entities("lead")) == 1, 15,
                   lambda: f"{len(store.entities('lead'))} leads")
        [(_id, _kind, state)] = store.entities("lead")
        assert set(state["identities"]) == {"anonymous_id", "user_id"} and set(state["claims"]) == {"email"}
        assert offline.external == []
