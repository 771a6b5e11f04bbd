"""End-to-end proof of the browser-test harness, and a record of the wire format.

The tracker endpoint must accept exactly what the stock Segment clients send,
so these tests run them unmodified against a dummy collector and pin down what
arrives: analytics-next in headless Chromium, and segment-analytics-python.
The receiver's own tests can build on the same fixtures.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, request, send_from_directory

from tests.support.browser import GuardedContext, RunningServer, netloc, serve

PAGES = Path(__file__).resolve().parent / "pages"
WRITE_KEY = "wk_harness_test"
BASIC_AUTH = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ISO_MS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass(frozen=True)
class Received:
    """One request as the collector saw it, body already un-gzipped."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw.decode("utf-8"))


class Collector:
    """A stand-in for /v1/*: records everything, answers like Segment's API.

    It also answers CORS preflights, because analytics-next's fetch carries an
    ``Authorization`` header, so a page on another origin preflights every
    distinct path before POSTing.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._changed = threading.Condition()
        self.app = Flask(f"collector-{id(self)}")
        self.app.add_url_rule("/v1/<path:rest>", view_func=self._v1, methods=["POST", "OPTIONS"])

    def _v1(self, rest: str) -> Response:
        raw = request.get_data()
        if request.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        with self._changed:
            self.received.append(Received(request.method, request.path, dict(request.headers), raw))
            self._changed.notify_all()
        response = Response(json.dumps({"success": True}), content_type="application/json")
        if origin := request.headers.get("Origin"):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = "POST"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
        return response

    def posts(self) -> list[Received]:
        with self._changed:
            return [r for r in self.received if r.method == "POST"]

    def wait_for_posts(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until ``count`` POSTs arrived; fail with what did arrive."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(posts := [r for r in self.received if r.method == "POST"]) < count:
                if not self._changed.wait(deadline - time.monotonic()) and time.monotonic() >= deadline:
                    pytest.fail(f"wanted {count} POSTs, got {[(r.path, r.raw[:200]) for r in posts]}")
            return posts


def site_app(umd_dir: Path) -> Flask:
    """The 'customer website': the test page plus analytics-next from node_modules."""
    app = Flask("site")
    app.add_url_rule("/", "page", lambda: send_from_directory(PAGES, "harness.html"))
    app.add_url_rule("/favicon.ico", "favicon", lambda: Response(status=204))
    app.add_url_rule(
        "/vendor/analytics-next/bundles/<path:name>",
        "vendor",
        lambda name: send_from_directory(umd_dir, name),
    )
    return app


@pytest.fixture
def collector() -> Iterator[tuple[Collector, RunningServer]]:
    c = Collector()
    with serve(c.app) as server:
        yield c, server


@pytest.fixture
def site(analytics_next_umd: Path) -> Iterator[RunningServer]:
    with serve(site_app(analytics_next_umd)) as server:
        yield server


OpenHarness = Callable[[], Any]


@pytest.fixture
def open_harness(
    offline: GuardedContext, site: RunningServer, collector: tuple[Collector, RunningServer]
) -> OpenHarness:
    """Open the harness page (site and collector on different origins) and
    wait until its page() and identify() calls have resolved."""

    def _open() -> Any:
        page = offline.context.new_page()
        page.goto(f"{site.url}/?writeKey={WRITE_KEY}&collector={netloc(collector[1])}")
        page.wait_for_function("window.__harness", timeout=15_000)
        result = page.evaluate("window.__harness")
        assert result["ok"], result.get("error")
        return page

    return _open


@pytest.mark.browser
def test_analytics_next_page_then_identify_reach_collector(
    open_harness: OpenHarness, collector: tuple[Collector, RunningServer], offline: GuardedContext
) -> None:
    col, _ = collector
    open_harness()
    page_post, identify_post = col.wait_for_posts(2)

    # Short paths, one per call type: /v1/p /v1/i (/v1/t /v1/g /v1/a /v1/s).
    assert [page_post.path, identify_post.path] == ["/v1/p", "/v1/i"]
    for post in (page_post, identify_post):
        assert post.headers["Content-Type"] == "text/plain"  # JSON text, no preflight for it
        assert post.headers["Authorization"] == BASIC_AUTH  # and writeKey in the body too
        assert "Content-Encoding" not in post.headers
    # Cross-origin + Authorization => one preflight per path, before its POST.
    preflights = [r for r in col.received if r.method == "OPTIONS"]
    assert {r.path for r in preflights} == {"/v1/p", "/v1/i"}
    assert all(r.headers["Access-Control-Request-Headers"] == "authorization" for r in preflights)

    page_evt, identify_evt = page_post.json(), identify_post.json()
    assert page_evt["type"] == "page" and identify_evt["type"] == "identify"
    assert UUID_RE.match(page_evt["anonymousId"])
    assert identify_evt["anonymousId"] == page_evt["anonymousId"]
    assert page_evt["userId"] is None and identify_evt["userId"] == "user-1"
    assert identify_evt["traits"] == {"email": "kim@example.com", "name": "김유진"}
    assert "김유진".encode() in identify_post.raw  # raw UTF-8, not \\u escapes
    for evt in (page_evt, identify_evt):
        assert evt["writeKey"] == WRITE_KEY
        assert evt["messageId"].startswith("ajs-next-")
        assert ISO_MS_RE.match(evt["timestamp"]) and ISO_MS_RE.match(evt["sentAt"])
        assert evt["context"]["library"]["name"] == "analytics.js"
        assert evt["context"]["library"]["version"].startswith("next-")
        assert evt["context"]["page"]["path"] == "/"
        assert evt["context"]["page"]["title"] == "crmrules tracker harness"
        assert {"userAgent", "locale", "timezone", "campaign"} <= evt["context"].keys()
    assert page_evt["properties"]["url"] == page_evt["context"]["page"]["url"]
    assert offline.external == []  # no CDN settings fetch, no api.segment.io, no metrics


@pytest.mark.browser
def test_lazy_chunks_load_from_local_vendor_dir(
    open_harness: OpenHarness, offline: GuardedContext, site: RunningServer
) -> None:
    """trackLink() lazy-loads the auto-track chunk; the `_cdn` seed keeps it local."""
    page = open_harness()
    with page.expect_response(re.compile(r"/auto-track\.bundle\.[0-9a-f]+\.js$")) as chunk:
        page.evaluate("window.__analytics.trackLink(document.querySelector('h1'), 'Clicked')")
    assert chunk.value.url.startswith(f"{site.url}/vendor/analytics-next/bundles/")
    assert chunk.value.ok
    assert offline.external == []


@pytest.mark.parametrize("use_gzip", [False, True], ids=["plain", "gzip"])
def test_python_client_posts_batch_with_basic_auth(collector: tuple[Collector, RunningServer], use_gzip: bool) -> None:
    """segment-analytics-python: `host` is scheme://host:port, it appends /v1/batch."""
    from segment.analytics import Client  # type: ignore[import-untyped]

    col, server = collector
    client = Client(WRITE_KEY, host=server.url, gzip=use_gzip, upload_interval=0.05, max_retries=0)
    try:
        client.identify("user-1", {"email": "kim@example.com", "name": "김유진"})
        client.track("user-1", "Signed Up", {"plan": "pro"})
        client.flush()
    finally:
        client.shutdown()

    posts = col.wait_for_posts(1)
    assert [p.path for p in posts] == ["/v1/batch"]
    post = posts[0]
    assert post.headers["Authorization"] == BASIC_AUTH
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["User-Agent"].startswith("analytics-python/")
    assert post.headers.get("Content-Encoding") == ("gzip" if use_gzip else None)

    body = post.json()
    assert set(body) == {"batch", "sentAt", "writeKey"} and body["writeKey"] == WRITE_KEY
    identify, track = body["batch"]
    assert identify["type"] == "identify" and track["type"] == "track"
    assert identify["traits"]["name"] == "김유진" and track["event"] == "Signed Up"
    for msg in (identify, track):
        assert msg["userId"] == "user-1" and msg["anonymousId"] is None
        assert UUID_RE.match(msg["messageId"])  # a bare uuid4, no prefix
        assert msg["context"]["library"]["name"] == "analytics-python"
        assert msg["timestamp"].endswith("+00:00")  # isoformat, not ...Z
