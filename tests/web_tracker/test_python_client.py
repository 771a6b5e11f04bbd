"""The stock segment-analytics-python client posting /v1/batch to the running sidecar over HTTP."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmrules.api import RECORD_UPDATE
from tests.web_tracker.stack import TEST_PACK, WRITE_KEY, StandIn, settings_for, wait_until


@pytest.fixture
def running(tmp_path: Path) -> Iterator[StandIn]:
    with StandIn(settings_for(tmp_path, [TEST_PACK])) as stack:
        yield stack


def client(stack: StandIn, write_key: str = WRITE_KEY, **options):
    from segment.analytics import Client  # type: ignore[import-untyped]

    errors: list[Exception] = []
    c = Client(write_key, host=stack.url, upload_interval=0.05, max_retries=options.pop("max_retries", 0),
               on_error=lambda exc, batch: errors.append(exc), **options)
    return c, errors


def events(stack: StandIn) -> list:
    return [e for _seq, e in stack.store.pending(10_000)]


@pytest.mark.parametrize("use_gzip", [False, True], ids=["plain", "gzip"])
def test_server_side_events_land_on_one_lead(running: StandIn, use_gzip: bool) -> None:
    c, errors = client(running, gzip=use_gzip)
    when = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    try:
        c.page(anonymous_id="anon-7", name="Pricing", properties={"path": "/pricing"}, timestamp=when)
        for n in range(3):
            c.track(anonymous_id="anon-7", event="Product Viewed", properties={"product_id": f"p{n}"},
                    timestamp=when + dt.timedelta(hours=n + 1))
        c.identify(user_id="user-7", anonymous_id="anon-7", traits={"email": "lee@example.com", "name": "이서준"},
                   timestamp=when + dt.timedelta(hours=5))
        c.flush()
    finally:
        c.shutdown()
    assert errors == []
    got = events(running)
    assert [e.type for e in got] == ["page_view", "product_view", "product_view", "product_view", RECORD_UPDATE]
    assert {e.source for e in got} == {"web"}
    assert got[0].occurred_at == when and got[0].properties["path"] == "/pricing"
    assert got[-1].subject.ids == {"anonymous_id": "anon-7", "user_id": "user-7", "email": "lee@example.com"}

    running.process()
    [(lead_id, _kind, state)] = running.store.entities("lead")
    assert state["identities"] == {"anonymous_id": "anon-7", "user_id": "user-7"}
    assert state["claims"] == {"email": "lee@example.com"}  # the tracker's word only: see test_trust.py
    assert state["props"]["name"] == "이서준"
    assert running.store.find_entity("lee@example.com") == lead_id
    assert [r for r in running.pushed if r[1].startswith("onsite ")]  # the coupon waits for anon-7


def test_a_resent_message_is_stored_once(running: StandIn) -> None:
    c, errors = client(running, gzip=True)
    try:
        c.track(user_id="user-1", event="Signed Up", message_id="fixed-id-1")
        c.flush()
        c.track(user_id="user-1", event="Signed Up", message_id="fixed-id-1")
        c.track(user_id="user-1", event="Signed Up", message_id="fixed-id-2")
        c.flush()
    finally:
        c.shutdown()
    assert errors == []
    assert [(e.id, e.type) for e in events(running)] == [("fixed-id-1", "signup"), ("fixed-id-2", "signup")]


def test_an_unknown_write_key_is_refused(running: StandIn) -> None:
    c, errors = client(running, write_key="wk_someone_else")
    try:
        c.track(user_id="user-1", event="Signed Up")
        c.flush()
    finally:
        c.shutdown()
    assert events(running) == []
    [error] = errors
    assert error.status == 401 and error.code == "unauthorized" and "unknown write key" in error.message


def test_throttled_client_retries_after_retry_after(tmp_path: Path) -> None:
    with StandIn(settings_for(tmp_path, rate_per_second=2, rate_burst=2)) as stack:
        c, errors = client(stack, max_retries=3, upload_size=2)
        started = time.monotonic()
        try:
            for n in range(4):
                c.track(user_id="user-1", event="Clicked", message_id=f"m{n}")
            c.flush()
            wait_until(lambda: len(events(stack)) == 4, 10, lambda: f"got {len(events(stack))} events")
        finally:
            c.shutdown()
        assert errors == []
        statuses = [status for _method, path, status in stack.responses if path == "/v1/batch"]
        assert statuses[0] == 200 and 429 in statuses and statuses[-1] == 200
        assert time.monotonic() - started >= 0.9  # it waited for the bucket to refill, as told by Retry-After
        assert sorted(e.id for e in events(stack)) == ["m0", "m1", "m2", "m3"]
