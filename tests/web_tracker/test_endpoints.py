"""The /v1 endpoints through Flask's test client: keys, CORS, limits, gzip, dedupe, errors."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmrules_web_tracker.limits import RateLimiter, TooLarge, gunzip
from tests.web_tracker.stack import WRITE_KEY, StandIn, settings_for

AUTH = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
ORIGIN = "http://shop.test:8000"


class Tracker:
    def __init__(self, tmp_path: Path, **plugin: Any):
        self.stack = StandIn(settings_for(tmp_path, **plugin))
        self.client = self.stack.app.test_client()

    def post(self, path: str, body: Any, headers: dict | None = None, raw: bytes | None = None):
        data = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode()
        return self.client.post(path, data=data, headers={**AUTH, **(headers or {})}, content_type="text/plain")

    def stored(self) -> list:
        return [e for _seq, e in self.stack.store.pending(10_000)]


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[Tracker]:
    t = Tracker(tmp_path)
    yield t
    t.stack.stop()


def track(mid: str = "m-1", **extra: Any) -> dict:
    return {"type": "track", "event": "Product Viewed", "anonymousId": "anon-1", "messageId": mid,
            "timestamp": "2026-01-05T00:00:00.000Z", **extra}


@pytest.mark.parametrize("path, body", [
    ("/v1/track", track()), ("/v1/t", track()),
    ("/v1/page", {**track(), "type": "page"}), ("/v1/p", {**track(), "type": "page"}),
    ("/v1/identify", {**track(), "type": "identify", "userId": "u"}), ("/v1/i", {**track(), "type": "identify"}),
    ("/v1/screen", {**track(), "type": "screen"}), ("/v1/s", {**track(), "type": "screen"}),
    ("/v1/group", {**track(), "type": "group", "groupId": "g"}),
    ("/v1/g", {**track(), "type": "group", "groupId": "g"}),
    ("/v1/alias", {**track(), "type": "alias", "previousId": "x"}),
    ("/v1/a", {**track(), "type": "alias", "previousId": "x"}),
    ("/v1/batch", {"batch": [track()]}), ("/v1/b", {"batch": [track()]}), ("/v1/import", {"batch": [track()]}),
])
def test_every_path_accepts_its_message(tracker: Tracker, path: str, body: dict) -> None:
    r = tracker.post(path, body)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"success": True, "accepted": 1, "duplicates": 0}
    [event] = tracker.stored()
    assert event.source == "web" and event.id == "m-1"


def test_cors_preflight_and_post(tracker: Tracker) -> None:
    pre = tracker.client.options("/v1/t", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                                                   "Access-Control-Request-Headers": "authorization,x-retry-count"})
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert {"authorization", "x-retry-count", "content-type"} <= {
        h.strip().lower() for h in pre.headers["Access-Control-Allow-Headers"].split(",")}
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    post = tracker.post("/v1/t", track(), headers={"Origin": ORIGIN})
    assert post.headers["Access-Control-Allow-Origin"] == ORIGIN and "Origin" in post.headers["Vary"]
    # Errors carry CORS too, or the browser could not read them.
    bad = tracker.post("/v1/t", {}, headers={"Origin": ORIGIN, "Authorization": "Basic " +
                                             base64.b64encode(b"nope:").decode()})
    assert bad.status_code == 401 and bad.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_origins_can_be_limited(tmp_path: Path) -> None:
    t = Tracker(tmp_path, allowed_origins=[ORIGIN])
    ok = t.client.options("/v1/p", headers={"Origin": ORIGIN})
    other = t.client.options("/v1/p", headers={"Origin": "http://evil.test"})
    assert ok.headers.get("Access-Control-Allow-Origin") == ORIGIN
    assert "Access-Control-Allow-Origin" not in other.headers


@pytest.mark.parametrize("headers, body_key, reason", [
    ({"Authorization": "Basic " + base64.b64encode(b"wk_other:").decode()}, None, "unknown write key"),
    ({"Authorization": ""}, None, "no write key"),
    ({"Authorization": "Basic %%%"}, None, "not valid Basic auth"),
    ({"Authorization": ""}, "wk_other", "unknown write key"),
    ({}, "wk_other", "differ"),
])
def test_write_keys(tracker: Tracker, headers: dict, body_key: str | None, reason: str) -> None:
    body = track(**({"writeKey": body_key} if body_key else {}))
    r = tracker.post("/v1/t", body, headers=headers)
    assert r.status_code == 401
    assert r.get_json()["code"] == "unauthorized" and reason in r.get_json()["message"]
    assert tracker.stored() == []


def test_write_key_in_the_body_alone(tracker: Tracker) -> None:
    r = tracker.post("/v1/t", track(writeKey=WRITE_KEY), headers={"Authorization": ""})
    assert r.status_code == 200


def test_no_write_keys_configured_means_nothing_is_accepted(tmp_path: Path) -> None:
    t = Tracker(tmp_path, write_keys=[])
    assert t.post("/v1/t", track()).status_code == 401


def test_misconfigured_plugin_answers_503(tmp_path: Path) -> None:
    t = Tracker(tmp_path, rate_burst="lots")
    r = t.post("/v1/t", track())
    assert r.status_code == 503 and "misconfigured" in r.get_json()["message"]


def test_redelivery_is_stored_once(tracker: Tracker) -> None:
    assert tracker.post("/v1/t", track()).get_json()["accepted"] == 1
    assert tracker.post("/v1/t", track()).get_json() == {"success": True, "accepted": 0, "duplicates": 1}
    r = tracker.post("/v1/b", {"batch": [track("m-1"), track("m-2")]})
    assert r.get_json() == {"success": True, "accepted": 1, "duplicates": 1}
    assert [e.id for e in tracker.stored()] == ["m-1", "m-2"]


def test_size_limits(tracker: Tracker) -> None:
    big = track(properties={"x": "y" * 33_000})
    r = tracker.post("/v1/t", big)
    assert r.status_code == 413 and "at most 32768" in r.get_json()["message"]
    r = tracker.post("/v1/b", {"batch": [big]})
    assert r.status_code == 400 and "batch[0] is" in r.get_json()["message"]
    many = {"batch": [track(f"m-{i}", properties={"x": "y" * 20_000}) for i in range(26)]}
    r = tracker.post("/v1/b", many)
    assert r.status_code == 413 and "512000" in r.get_json()["message"]
    assert tracker.stored() == []


def test_gzip_bodies(tracker: Tracker) -> None:
    body = json.dumps({"batch": [track("g-1"), track("g-2")]}).encode()
    r = tracker.post("/v1/batch", None, headers={"Content-Encoding": "gzip"}, raw=gzip.compress(body))
    assert r.status_code == 200 and r.get_json()["accepted"] == 2
    # A small body that inflates past the cap is refused without inflating it all.
    bomb = gzip.compress(b'{"batch": [' + b" " * 5_000_000 + b"]}")
    assert len(bomb) < 10_000
    r = tracker.post("/v1/batch", None, headers={"Content-Encoding": "gzip"}, raw=bomb)
    assert r.status_code == 413 and "decompresses to more than" in r.get_json()["message"]
    r = tracker.post("/v1/batch", None, headers={"Content-Encoding": "gzip"}, raw=b"not gzip at all")
    assert r.status_code == 400 and "not valid gzip" in r.get_json()["message"]
    r = tracker.post("/v1/batch", None, headers={"Content-Encoding": "gzip"}, raw=gzip.compress(body)[:-12])
    assert r.status_code == 400
    r = tracker.post("/v1/batch", None, headers={"Content-Encoding": "br"}, raw=body)
    assert r.status_code == 415
    # The single-event cap holds for gzip bodies too.
    one = gzip.compress(json.dumps(track(properties={"x": "y" * 40_000})).encode())
    r = tracker.post("/v1/t", None, headers={"Content-Encoding": "gzip"}, raw=one)
    assert r.status_code == 413


def test_gunzip_cap() -> None:
    data = b"x" * 1000
    assert gunzip(gzip.compress(data), 1000) == data
    with pytest.raises(TooLarge):
        gunzip(gzip.compress(data), 999)


@pytest.mark.parametrize("raw, reason", [
    (b"not json", "not UTF-8 JSON"),
    (b"\xff\xfe", "not UTF-8 JSON"),
    (b"[1, 2]", "must be a JSON object"),
])
def test_bad_bodies(tracker: Tracker, raw: bytes, reason: str) -> None:
    r = tracker.post("/v1/t", None, raw=raw)
    assert r.status_code in (400, 401)
    if r.status_code == 400:
        assert reason in r.get_json()["message"]


def test_a_time_without_zone_is_refused_and_nothing_of_the_batch_is_kept(tracker: Tracker) -> None:
    r = tracker.post("/v1/b", {"batch": [track("ok"), track("naive", timestamp="2026-01-05T09:00:00")]})
    assert r.status_code == 400
    reason = ("batch[1]: timestamp '2026-01-05T09:00:00' has no time zone; send UTC with Z "
              "(2026-01-05T09:00:00Z) or an offset (+09:00)")
    assert r.get_json() == {"success": False, "code": "bad_request", "message": reason, "error": reason}
    assert tracker.stored() == []


def test_reserved_event_names_are_refused(tracker: Tracker) -> None:
    for name in ("merge", "record_update"):
        r = tracker.post("/v1/t", track(event=name, properties={"merged_ids": {"email": "ceo@corp.example"}}))
        assert r.status_code == 400 and "reserved" in r.get_json()["message"]


def test_rate_limit_per_write_key(tmp_path: Path) -> None:
    t = Tracker(tmp_path, write_keys=[WRITE_KEY, "wk_second"], rate_per_second=0.5, rate_burst=3)
    assert t.post("/v1/b", {"batch": [track("a"), track("b")]}).status_code == 200
    assert t.post("/v1/t", track("c")).status_code == 200
    r = t.post("/v1/t", track("d"), headers={"Origin": ORIGIN})
    assert r.status_code == 429 and r.get_json()["code"] == "rate_limited"
    assert r.headers["Retry-After"] == "2"
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Retry-After" in r.headers["Access-Control-Expose-Headers"]
    other = {"Authorization": "Basic " + base64.b64encode(b"wk_second:").decode()}
    assert t.post("/v1/t", track("e"), headers=other).status_code == 200  # its own bucket
    r = t.post("/v1/b", {"batch": [track(f"x{i}") for i in range(4)]}, headers=other)
    assert r.status_code == 413 and "burst" in r.get_json()["message"]
    assert sorted(e.id for e in t.stored()) == ["a", "b", "c", "e"]


def test_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert limiter.take("k", 10, rate=5, burst=10) == 0
    assert limiter.take("k", 1, rate=5, burst=10) == pytest.approx(0.2)
    now[0] = 1.0
    assert limiter.take("k", 5, rate=5, burst=10) == 0
    assert limiter.take("k", 1, rate=5, burst=10) == pytest.approx(0.2)
    now[0] = 100.0
    assert limiter.take("k", 10, rate=5, burst=10) == 0  # refills up to the burst, no further
    assert limiter.take("k", 1, rate=5, burst=10) > 0
    assert limiter.take("k", 11, rate=5, burst=10) == float("inf")


def test_routes_are_described_in_the_receivers_openapi(tracker: Tracker) -> None:
    doc = tracker.client.get("/openapi.json").get_json(silent=True) or {}
    if "paths" not in doc:
        pytest.skip("no core receiver in this checkout")
    for path in ("/v1/t", "/v1/batch", "/v1/b", "/v1/onsite", "/v1/onsite/shown", "/v1/crmrules.js"):
        assert path in doc["paths"] and doc["paths"][path], path
    assert doc["paths"]["/v1/batch"]["post"]["operationId"] == "web_tracker_batch"
    assert "TrackerError" in doc["components"]["schemas"]


def test_the_snippet_is_served(tracker: Tracker) -> None:
    r = tracker.client.get("/v1/crmrules.js")
    assert r.status_code == 200 and r.content_type.startswith("application/javascript")
    text = r.get_data(as_text=True)
    assert "textContent" in text and "innerHTML =" not in text and "/onsite/shown" in text
    assert len(r.get_data()) < 12_000
