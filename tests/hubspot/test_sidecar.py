"""`crmrules serve` end to end with the HubSpot plugin: a signed webhook batch in, a task and tags out.

The HubSpot side is the stand-in (tests/standins/hubspot.py) on loopback, written to by the real
hubspot-api-client inside the sidecar process. HubSpot's webhook subscriptions carry CRM changes only, not
website behaviour; here the behaviour (two pricing views, an eBook download) arrives as `behavioralEvent`
notifications, the plugin's documented extension for a signed relay (e.g. a workflow webhook). In a real
deployment the web tracker would usually send it instead; the point of this test is the HubSpot path.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from ..standins.hubspot import HubSpotState
from ..support.servers import RunningServer
from .conftest import CLIENT_SECRET, PUBLIC_URL, TOKEN, notification, signed_headers

sidecar_module = pytest.importorskip("tests.support.sidecar", reason="tests/support/sidecar.py is not there yet")

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "packs" / "quickstart"
PORTAL = 62515
EVENT_NAMES = {f"pe{PORTAL}_pricing_viewed": "page_view", f"pe{PORTAL}_ebook_downloaded": "ebook_download"}


def batch(contact_id: int, now_ms: int) -> list[dict[str, Any]]:
    minute = 60_000

    def n(subscription: str, event_id: int, minutes_ago: int, **extra: Any) -> dict[str, Any]:
        return notification(subscription, object_id=contact_id, event_id=event_id,
                            occurredAt=now_ms - minutes_ago * minute, **extra)

    return [
        n("contact.creation", 1, 30),
        n("contact.propertyChange", 2, 30, propertyName="email", propertyValue="kim@example.com"),
        n("contact.propertyChange", 3, 30, propertyName="firstname", propertyValue="유진"),
        n("contact.propertyChange", 4, 30, propertyName="lastname", propertyValue="김"),
        n("contact.behavioralEvent", 5, 20, eventName=f"pe{PORTAL}_pricing_viewed",
          properties={"path": "/pricing"}),
        n("contact.behavioralEvent", 6, 10, eventName=f"pe{PORTAL}_pricing_viewed",
          properties={"path": "/pricing"}),
        n("contact.behavioralEvent", 7, 1, eventName=f"pe{PORTAL}_ebook_downloaded",
          properties={"title": "B2B 영업 가이드"}),
    ]


def outbox(store: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        return db.execute("SELECT action_type, status, coalesce(result, last_error, '') FROM outbox "
                          "ORDER BY created_at").fetchall()


def inbox_count(store: Path) -> int:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM inbox WHERE source = 'hubspot'").fetchone()[0])


def wait_for(condition, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError("timed out")


@pytest.fixture
def sidecar(tmp_path: Path, hubspot_server: RunningServer):
    config = {
        "rules": [str(QUICKSTART)],
        "targets": {"default": "hubspot"},
        "plugins": {"hubspot": {"host": hubspot_server.url, "public_url": PUBLIC_URL, "portal_ids": [PORTAL],
                                "event_names": EVENT_NAMES, "timeout": 5}},
    }
    env = {"HUBSPOT_CLIENT_SECRET": CLIENT_SECRET, "HUBSPOT_ACCESS_TOKEN": TOKEN,
           "CRMRULES_LOAD_PLUGINS": "hubspot"}
    with sidecar_module.start_sidecar(tmp_path / "sidecar", config, env=env) as running:
        yield running


def test_signed_batch_makes_a_task_and_tags_once(sidecar, hubspot_state: HubSpotState) -> None:
    contact = hubspot_state.add("contacts", {"email": "kim@example.com"})
    body = json.dumps(batch(int(contact.id), int(time.time() * 1000)), ensure_ascii=False).encode("utf-8")

    status, _, answer = sidecar.post("/hooks/hubspot", data=body, headers=signed_headers(body))
    answered = time.monotonic()
    assert status == 200, answer
    assert json.loads(answer)["new"] == 8  # creation is two events (record_update + created)

    def done() -> bool:
        tags = (hubspot_state.get("contacts", contact.id).properties.get("crmrules_tags") or "").split(";")
        return len(hubspot_state.tasks) == 1 and {"관심 높음", "sales-ready"} <= set(tags)

    wait_for(done)
    elapsed = time.monotonic() - answered
    assert elapsed < 1.0, f"task and tags took {elapsed:.2f}s after the webhook was answered"

    [task] = hubspot_state.tasks
    assert task.properties["hs_task_subject"] == "Call 김유진 today"
    [link] = hubspot_state.associations_of("tasks", task.id)
    assert (link.to_type, link.to_id, link.type_id) == ("contacts", contact.id, 204)
    wait_for(lambda: hubspot_state.get("contacts", contact.id).properties.get("crmrules_score") == "30")
    writes_before = len([r for r in hubspot_state.requests if r.method in ("POST", "PATCH", "PUT")
                         and not r.path.endswith("/search")])

    # HubSpot delivers the same batch again (its retry after a slow answer): nothing more happens.
    status, _, answer = sidecar.post("/hooks/hubspot", data=body, headers=signed_headers(body))
    assert status == 200 and json.loads(answer) == {"events": 8, "new": 0, "duplicates": 8, "skipped": {}}
    time.sleep(1.0)
    assert len(hubspot_state.tasks) == 1
    writes_after = len([r for r in hubspot_state.requests if r.method in ("POST", "PATCH", "PUT")
                        and not r.path.endswith("/search")])
    assert writes_after == writes_before
    assert inbox_count(sidecar.store_path) == 8
    rows = outbox(sidecar.store_path)
    assert sorted(r[0] for r in rows) == ["score", "tag", "tag", "task"]
    assert {r[1] for r in rows} == {"sent"}, rows


def test_bad_signature_is_401_and_nothing_is_stored(sidecar, hubspot_state: HubSpotState) -> None:
    contact = hubspot_state.add("contacts", {"email": "lee@example.com"})
    body = json.dumps(batch(int(contact.id), int(time.time() * 1000)), ensure_ascii=False).encode("utf-8")
    for headers, data in ((signed_headers(body, secret="not-the-app-secret"), body),
                          (signed_headers(body), body.replace("유진".encode(), "민수".encode())),
                          (signed_headers(body, at=time.time() - 3600), body),
                          (signed_headers(body, uri=sidecar.url + "/hooks/hubspot"), body),  # not the public URL
                          ({}, body)):
        status, _, answer = sidecar.post("/hooks/hubspot", data=data, headers=headers)
        assert status == 401, answer
        assert "error" in json.loads(answer)
    time.sleep(0.3)
    assert inbox_count(sidecar.store_path) == 0
    assert hubspot_state.tasks == [] and hubspot_state.property_updates == []
    status, _, metrics = sidecar.get("/metrics")
    assert 'crmrules_events_total{result="rejected",source="hubspot"} 5.0' in metrics.decode()


def test_openapi_describes_the_webhook(sidecar) -> None:
    status, _, document = sidecar.get("/openapi.json")
    assert status == 200
    operation = json.loads(document)["paths"]["/hooks/hubspot"]["post"]
    assert operation["operationId"] == "hubspot_webhook"


def test_poller_pulls_modified_contacts(tmp_path: Path, hubspot_server: RunningServer,
                                        hubspot_state: HubSpotState) -> None:
    hubspot_state.add("contacts", {"email": "park@example.com", "firstname": "서준"})
    config = {"rules": [str(QUICKSTART)], "targets": {"default": "hubspot"},
              "plugins": {"hubspot": {"host": hubspot_server.url, "poll_every": "1s", "poll_objects": ["contacts"]}}}
    env = {"HUBSPOT_CLIENT_SECRET": CLIENT_SECRET, "HUBSPOT_ACCESS_TOKEN": TOKEN, "CRMRULES_LOAD_PLUGINS": "hubspot"}
    with sidecar_module.start_sidecar(tmp_path / "poller", config, env=env) as running:
        wait_for(lambda: inbox_count(running.store_path) == 1, timeout=10)

        def cursor() -> Any:
            with sqlite3.connect(f"file:{running.store_path}?mode=ro", uri=True) as db:
                row = db.execute("SELECT value FROM meta WHERE key = 'pull.hubspot.cursor'").fetchone()
            return json.loads(row[0]) if row else None

        wait_for(lambda: cursor() is not None)  # the cursor moves just after the ingest
        assert set(cursor()) == {"contacts"}
