"""Through the real sidecar: past durable-rules' own limits, and out of order.

- durable-rules keeps at most 1,024 live sessions per ruleset and 254 properties per message. 1,100 distinct
  visitors, each with one event of 300 properties (Korean values among them), go through the tracker endpoint;
  the rule that reads the 300th property decides for exactly the visitors whose value matches.
- A HubSpot property change that arrives after a newer one (HubSpot does not promise order) does not overwrite
  the newer value; the lead keeps the newer state. (Window counting by event time with late events is tested on
  the pipeline in tests/core/test_event_time.py; this is the sidecar path.)
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

from crmrules.store import SQLiteStore

from tests.support.sidecar import start_sidecar

from .hub import HubSpot, deliver, drained, notification, rows, start, wait_until

WRITE_KEY = "wk_faults_scale"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
        "Content-Type": "application/json"}
VISITORS = 1100

WIDE = """\
pack: wide
rules:
  - id: enterprise-reader
    when: {count: {event: product_view, where: {prop_299: 엔터프라이즈}, within: 1d, at_least: 1}}
    then: [{score: +5}]
    mode: shadow
"""


def _visitor_event(n: int, at: str) -> dict:
    properties = {f"prop_{i}": f"값 {i} ✓" for i in range(299)}
    properties["prop_299"] = "엔터프라이즈" if n % 2 == 0 else "스타트업"
    return {"type": "track", "event": "Product Viewed", "anonymousId": f"anon-{n:05d}",
            "messageId": f"wide-{n}", "timestamp": at, "properties": properties}


def test_1100_visitors_with_300_properties_each_decide_correctly(tmp_path: Path) -> None:
    pack = tmp_path / "packs" / "wide"
    pack.mkdir(parents=True)
    (pack / "pack.yaml").write_text(WIDE, encoding="utf-8")
    config = {"rules": [str(pack)],
              "plugins": {"web_tracker": {"write_keys": [WRITE_KEY], "allowed_origins": ["*"],
                                          "rate_per_second": 100000, "rate_burst": 100000}}}
    sidecar = start_sidecar(tmp_path / "sidecar", config, env={"CRMRULES_LOAD_PLUGINS": "web_tracker"})
    try:
        at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        events = [_visitor_event(n, at) for n in range(VISITORS)]
        for i in range(0, VISITORS, 40):
            status, _, body = sidecar.post("/v1/batch", {"batch": events[i:i + 40]}, headers=AUTH)
            assert status == 200, body[:300]
            assert json.loads(body)["accepted"] == len(events[i:i + 40])

        wait_until(lambda: drained(sidecar), 120, "1,100 events to be evaluated")
        inbox = rows(sidecar, "SELECT status, count(*) AS n FROM inbox GROUP BY status")
        assert inbox == [{"status": "done", "n": VISITORS}], inbox
        fired = rows(sidecar, "SELECT entity_id FROM decisions WHERE rule LIKE '%enterprise-reader'")
        assert len(fired) == VISITORS // 2 and len({r["entity_id"] for r in fired}) == VISITORS // 2
        store = SQLiteStore(sidecar.store_path)
        try:
            assert len(store.entities("lead")) == VISITORS
            for n in (0, 1, 1098, 1099):  # the right visitors: even ones read 엔터프라이즈
                entity = store.find_entity(f"anon-{n:05d}")
                assert entity is not None
                assert bool(store.decisions_of(entity)) is (n % 2 == 0)
        finally:
            store.close()
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()


def test_a_stale_property_change_does_not_overwrite_newer_state(tmp_path: Path, hub: HubSpot) -> None:
    [contact] = hub.contacts(1)
    pack = tmp_path / "packs" / "none"
    pack.mkdir(parents=True)
    (pack / "pack.yaml").write_text("pack: none\nrules: []\n", encoding="utf-8")
    sidecar = start(tmp_path / "sidecar", hub, [pack])
    try:
        newer = notification("contact.propertyChange", int(contact), 2, 1_790_000_120_000,
                             propertyName="firstname", propertyValue="새 이름")
        older = notification("contact.propertyChange", int(contact), 1, 1_790_000_000_000,
                             propertyName="firstname", propertyValue="옛 이름")
        older_other = notification("contact.propertyChange", int(contact), 3, 1_790_000_000_000,
                                   propertyName="lastname", propertyValue="김")
        assert deliver(sidecar, [newer])[0] == 200
        wait_until(lambda: drained(sidecar), 30, "the newer change")
        assert deliver(sidecar, [older, older_other])[0] == 200  # two minutes older, delivered later
        wait_until(lambda: drained(sidecar), 30, "the older change")
        store = SQLiteStore(sidecar.store_path)
        try:
            props = store.load_entity(store.find_entity(contact))["props"]
        finally:
            store.close()
        assert props["first_name"] == "새 이름"
        assert props["last_name"] == "김"  # an older value of a field the lead did not have is still news
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()
