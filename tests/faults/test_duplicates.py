"""The same event delivered more than once makes one set of actions: concurrently, minutes apart (HubSpot
re-signs each retry), inside a Salesforce envelope of 100 notifications of which some were seen before, and
tracker messages that share a messageId.

The pack acts on *every* event (`limit: every time`, tests/faults/packs/every), so a duplicate that got through
would show as one more decision and one more push; the default `once per lead` would hide it.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from crmrules.outbox import Dispatcher

from tests.standins import salesforce as sf_standin
from tests.support.servers import serve
from tests.support.sidecar import start_sidecar

from .hub import (PACKS, HubSpot, drained, encode, event_ids, inbox, notification, post, rows, signed,
                  start, wait_until)

EVERY = PACKS / "every"


def _changes(contact: str, first_event_id: int, n: int = 5) -> list[dict[str, Any]]:
    base = 1_790_000_000_000
    return [notification("contact.propertyChange", int(contact), first_event_id + i, base + i * 60_000,
                         propertyName="firstname", propertyValue=f"이름 {i}") for i in range(n)]


def _fired(sidecar, rule: str) -> int:
    return rows(sidecar, "SELECT count(*) AS n FROM decisions WHERE rule LIKE ? AND outcome IN ('fired','shadow')",
                f"%{rule}")[0]["n"]


def test_the_same_hubspot_batch_delivered_concurrently_acts_once(tmp_path: Path, hub: HubSpot) -> None:
    [contact] = hub.contacts(1)
    batch = _changes(contact, 1)
    body = encode(batch)
    headers = signed(body)
    sidecar = start(tmp_path / "sidecar", hub, [EVERY])
    try:
        gate = threading.Barrier(6)
        answers: list[tuple[int, dict]] = []

        def send() -> None:
            gate.wait()
            status, _, answer = post(sidecar.url, "/hooks/hubspot", body, headers)
            answers.append((status, json.loads(answer)))

        senders = [threading.Thread(target=send) for _ in range(6)]
        for t in senders:
            t.start()
        for t in senders:
            t.join(30)
        assert [s for s, _ in answers] == [200] * 6
        assert sum(a["new"] for _, a in answers) == 5  # each notification accepted by exactly one request
        assert sum(a["duplicates"] for _, a in answers) == 25
        wait_until(lambda: drained(sidecar), 30, "the batch to be evaluated and pushed")
        assert _fired(sidecar, "each-change") == 5
        assert hub.prop(contact, "crmrules_score") == "5"
        assert hub.property_writes("crmrules_score") == {contact: 5}
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()


def test_the_same_hubspot_batch_minutes_apart_acts_once(tmp_path: Path, hub: HubSpot) -> None:
    """HubSpot retries a delivery minutes later, re-signed with a new timestamp and attemptNumber + 1. Here the
    first delivery is signed four minutes ago (inside the five-minute window) and the retry now; no sleeping."""

    [contact] = hub.contacts(1)
    batch = _changes(contact, 1)
    sidecar = start(tmp_path / "sidecar", hub, [EVERY])
    try:
        first = encode(batch)
        status, _, answer = post(sidecar.url, "/hooks/hubspot", first, signed(first, at=time.time() - 240))
        assert status == 200 and json.loads(answer)["new"] == 5
        wait_until(lambda: drained(sidecar) and hub.prop(contact, "crmrules_score") == "5", 30, "the first time")

        for n in batch:
            n["attemptNumber"] = 1
        again = encode(batch)
        status, _, answer = post(sidecar.url, "/hooks/hubspot", again, signed(again))
        assert status == 200 and json.loads(answer) | {"skipped": None} == \
            {"new": 0, "duplicates": 5, "events": 5, "skipped": None}
        # A copy signed six minutes ago is outside the replay window: refused, not counted as a duplicate.
        status, _, _ = post(sidecar.url, "/hooks/hubspot", again, signed(again, at=time.time() - 360))
        assert status == 401
        wait_until(lambda: drained(sidecar), 30, "the retry")
        assert _fired(sidecar, "each-change") == 5
        assert hub.property_writes("crmrules_score") == {contact: 5}
        assert hub.prop(contact, "crmrules_score") == "5"
        assert set(inbox(sidecar)) == set(event_ids(batch))
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()


def test_tracker_messages_with_the_same_message_id_act_once(tmp_path: Path) -> None:
    key = "wk_faults_dup"
    config = {"rules": [str(EVERY)],
              "plugins": {"web_tracker": {"write_keys": [key], "allowed_origins": ["*"]}}}
    sidecar = start_sidecar(tmp_path / "sidecar", config, env={"CRMRULES_LOAD_PLUGINS": "web_tracker"})

    def view(mid: str, sent_at: str) -> dict:
        return {"type": "track", "event": "Product Viewed", "anonymousId": "anon-dup", "messageId": mid,
                "timestamp": "2026-11-20T10:00:00.000+09:00", "sentAt": sent_at, "writeKey": key,
                "properties": {"product_id": "책상"}}

    try:
        # Twice in one batch, then the same message re-sent by the client (new sentAt), from four threads at once.
        status, _, _ = sidecar.post("/v1/batch", {"batch": [view("m-1", "2026-11-20T01:00:00Z"),
                                                            view("m-1", "2026-11-20T01:00:00Z"),
                                                            view("m-2", "2026-11-20T01:00:00Z")], "writeKey": key})
        assert status == 200
        results: list[int] = []
        gate = threading.Barrier(4)

        def resend() -> None:
            gate.wait()
            results.append(sidecar.post("/v1/track", view("m-1", "2026-11-20T01:05:00Z"))[0])

        threads = [threading.Thread(target=resend) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == [200] * 4
        wait_until(lambda: drained(sidecar), 30, "the views to be evaluated")
        assert rows(sidecar, "SELECT count(*) AS n FROM inbox")[0]["n"] == 2
        assert _fired(sidecar, "each-view") == 2
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()


# ---------------------------------------------------------------- Salesforce, in process with the real dispatcher

@pytest.fixture
def salesforce(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from tests.salesforce.conftest import FLOW_SECRET, INSTANCE, SESSION_ID, Receiver, through
    from tests.salesforce.envelopes import ORG_ID

    monkeypatch.setenv("SALESFORCE_INSTANCE_URL", f"https://{INSTANCE}")
    monkeypatch.setenv("SALESFORCE_SESSION_ID", SESSION_ID)
    monkeypatch.setenv("SALESFORCE_FLOW_SECRET", FLOW_SECRET)
    for name in ("SALESFORCE_OUTBOUND_TOKEN", "SALESFORCE_ORGANIZATION_ID", "SALESFORCE_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    server = serve(sf_standin.create_app(session_id=SESSION_ID, org_id=ORG_ID))
    session = sf_standin.rewriting_session(server.url, timeout=5.0)
    receiver = Receiver(tmp_path, {"organization_id": ORG_ID}, packs=[EVERY])
    try:
        with through(session):
            yield receiver, server.app.config["STATE"]
    finally:
        receiver.close()
        session.close()
        server.stop()


def test_salesforce_envelope_of_100_with_some_seen_before_acts_once_per_notification(salesforce) -> None:
    from tests.salesforce.envelopes import ACK, envelope, notification as sf_notification, notification_id

    receiver, state = salesforce
    leads = [state.add("Lead", {"LastName": f"김{n}", "Company": "가나다"}).id for n in range(100)]

    def notes(numbers: range) -> bytes:
        return envelope([sf_notification(notification_id(n), "Lead",
                                         {"Id": leads[n], "LastName": f"김{n}", "Company": "가나다"})
                         for n in numbers])

    assert receiver.post("/hooks/salesforce/outbound", notes(range(0, 30))).data == ACK
    receiver.process()
    assert receiver.post("/hooks/salesforce/outbound", notes(range(0, 100))).data == ACK  # 30 seen before
    assert receiver.post("/hooks/salesforce/outbound", notes(range(0, 100))).data == ACK  # all seen before
    receiver.process()
    assert receiver.inbox() == 100
    dispatcher = Dispatcher(receiver.store, receiver.settings, clock=receiver.clock)
    for _ in range(10):
        if not dispatcher.run_once(time.time()):
            break
    decisions = receiver.store.all_decisions()
    assert len([d for d in decisions if d.rule.endswith("each-change")]) == 100
    assert receiver.store.outbox_counts() == {"sent": 100}
    scores = [state.get("Lead", lead).fields.get("Crmrules_Score__c") for lead in leads]
    assert set(scores) == {1}, sorted(set(map(str, scores)))
