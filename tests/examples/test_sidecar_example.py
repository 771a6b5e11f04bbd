"""examples/sidecar/crmrules.yaml, as shipped, runs: `crmrules serve` with every pack in rules/.

A real sidecar process takes the example file with only what a test must change (the store in tmp, the HubSpot
API host pointing at the stand-in in tests/standins/hubspot.py). A signed HubSpot batch about a manufacturing
contact ends as the industry first e-mail, recorded as a note on the contact (the example sets no
transactional e-mail ids); three product views sent by the stock Segment Python client end as the secret
coupon waiting for that visitor's next page.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.hubspot.conftest import CLIENT_SECRET, TOKEN, notification, signed_headers
from tests.standins import hubspot as hubspot_standin
from tests.support.servers import serve
from tests.support.sidecar import start_sidecar
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sidecar" / "crmrules.yaml"
ZONES = ["Pacific/Honolulu", "America/Los_Angeles", "America/New_York", "Europe/London", "Europe/Berlin",
         "Asia/Dubai", "Asia/Singapore", "Australia/Sydney"]


def daytime_zone() -> str:
    """A zone where it is now office hours, so the packs' quiet hours (21:00–08:00) hold nothing back."""

    now = dt.datetime.now(dt.timezone.utc)
    return next(z for z in ZONES if 10 <= now.astimezone(ZoneInfo(z)).hour < 19)


def example_config(tmp_path: Path, hubspot_url: str) -> dict[str, Any]:
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    config["store"] = str(tmp_path / "crmrules.sqlite")
    config["rules"] = [str((EXAMPLE.parent / r).resolve()) for r in config["rules"]]
    config["plugins"]["hubspot"]["host"] = hubspot_url
    return config


@pytest.fixture
def hubspot():
    with serve(hubspot_standin.create_app(token=TOKEN)) as server:
        yield server


def test_the_example_config_passes_check() -> None:
    result = subprocess.run([sys.executable, "-m", "crmrules.cli", "--config", str(EXAMPLE), "check"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    packs = sorted(p.parent.name for p in (ROOT / "rules").glob("*/pack.yaml"))
    assert f"{len(packs)} pack(s)" in result.stdout and all(p in result.stdout for p in packs)


def test_the_example_sidecar_answers_hubspot_and_the_website(tmp_path: Path, hubspot) -> None:
    config = example_config(tmp_path, hubspot.url)
    public_url = config["plugins"]["hubspot"]["public_url"]
    write_key = config["plugins"]["web_tracker"]["write_keys"][0]
    state: hubspot_standin.HubSpotState = hubspot.app.config["STATE"]
    contact = state.add("contacts", {"email": "yujin.kim@hanul-semi.example"})
    zone = daytime_zone()
    env = {"HUBSPOT_CLIENT_SECRET": CLIENT_SECRET, "HUBSPOT_ACCESS_TOKEN": TOKEN,
           "CRMRULES_LOAD_PLUGINS": "hubspot,web_tracker"}

    with start_sidecar(tmp_path, config, env=env) as sidecar:
        now_ms = int(time.time() * 1000)
        # Each property change is its own notification and is decided as it arrives: the language and the
        # zone come first, as a form that sets them all at once would be delivered in HubSpot's order.
        changes = {"hs_language": "en", "hs_timezone": zone.lower().replace("/", "_slash_"),
                   "country": "Singapore", "email": "yujin.kim@hanul-semi.example", "firstname": "유진",
                   "lastname": "김", "email_opt_in": "true", "industry": "MANUFACTURING"}
        batch = [notification("contact.creation", int(contact.id), 1, occurredAt=now_ms - 60_000)]
        batch += [notification("contact.propertyChange", int(contact.id), 2 + n, occurredAt=now_ms - 59_000 + n,
                               propertyName=name, propertyValue=value)
                  for n, (name, value) in enumerate(changes.items())]
        body = json.dumps(batch, ensure_ascii=False).encode("utf-8")
        status, _, answer = sidecar.post("/hooks/hubspot", data=body, headers=signed_headers(body, uri=public_url))
        assert status == 200, answer

        [note] = wait_until(lambda: state.notes, what="the industry first e-mail as a HubSpot note")
        text = json.dumps(note.properties, ensure_ascii=False)
        assert "김유진" in text and "manufacturers" in text, text

        from segment.analytics import Client  # type: ignore[import-untyped]

        errors: list[Exception] = []
        client = Client(write_key, host=sidecar.url, upload_interval=0.05, max_retries=0,
                        on_error=lambda exc, _batch: errors.append(exc))
        seen = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3)
        for n in range(3):
            client.track(anonymous_id="visitor-7", event="Product Viewed", properties={"product_id": "sku-42"},
                         timestamp=seen + dt.timedelta(minutes=n))
        client.flush()
        assert not errors, errors

        query = urllib.parse.urlencode({"writeKey": write_key, "anonymousId": "visitor-7"})

        def coupon() -> list[dict[str, Any]]:
            status, _, raw = sidecar.get(f"/v1/onsite?{query}")
            assert status == 200, raw
            return json.loads(raw).get("messages", [])

        [message] = wait_until(coupon, what="the secret coupon for the visitor")
        assert "SECRET10" in json.dumps(message, ensure_ascii=False)
