"""Security checks as tests.

- Every source that authenticates its requests compares the secret or signature with `hmac.compare_digest`
  (checked by watching the call during real requests, not by reading the code), and HubSpot's v3 signature
  carries a timestamp with a replay window. Salesforce Outbound Messages carry no signature or time stamp
  (Salesforce authenticates them by org id, optional token and TLS); a replay of one is a duplicate by its
  notification id (tests/faults/test_duplicates.py). Tracker write keys are public routing keys, not secrets.
- Secrets never reach the sidecar's log, and personal data only masked: a real `crmrules serve` is driven
  through failures that log (bad signatures, wrong secrets, a CRM refusing the token, dead letters), and its
  whole log output is searched for the known secret values and the lead's email and phone number.
- Tracker events alone never trigger privileged actions: tests/web_tracker/test_trust.py.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from pathlib import Path

import pytest

from crmrules.receiver.logging import PiiFilter, remember_secrets

from .hub import (PACKS, PORTAL, PUBLIC_URL, TOKEN, HubSpot, drained, encode, notification, post, rows, signed,
                  start, wait_until)


class _Spy:
    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.calls: list[tuple[bytes, bytes]] = []
        real = hmac.compare_digest

        def compare_digest(a, b):  # type: ignore[no-untyped-def]
            self.calls.append((a, b))
            return real(a, b)

        monkeypatch.setattr(hmac, "compare_digest", compare_digest)


def _raw(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def test_signatures_and_secrets_are_compared_in_constant_time_within_a_replay_window(monkeypatch, tmp_path) -> None:
    from crmrules.receiver import create_app
    from crmrules.api import Runtime
    from crmrules.plugins import fresh_registry, reset_plugins
    from crmrules.store import SQLiteStore

    monkeypatch.setenv("HUBSPOT_CLIENT_SECRET", "spy-secret-123456")
    monkeypatch.setenv("CRMRULES_LOAD_PLUGINS", "hubspot,salesforce")
    monkeypatch.setenv("SALESFORCE_FLOW_SECRET", "spy-flow-secret-42")
    reset_plugins()
    store = SQLiteStore(tmp_path / "s.sqlite")
    try:
        settings = {"plugins": {"hubspot": {"public_url": PUBLIC_URL}, "salesforce": {}}, "max_body_bytes": 1 << 20}
        app = create_app(Runtime(ingest=lambda events: [True] * len(events), settings=settings, store=store),
                         fresh_registry(), packs=[])
        client = app.test_client()
        spy = _Spy(monkeypatch)
        body = encode([notification("contact.creation", 1, 1, int(time.time() * 1000))])
        good = signed(body, secret="spy-secret-123456")
        assert client.post("/hooks/hubspot", data=body, headers=good).status_code == 200
        assert spy.calls and spy.calls[-1][0] == good["X-HubSpot-Signature-v3"].encode()
        forged = {**good, "X-HubSpot-Signature-v3": good["X-HubSpot-Signature-v3"][:-4] + "AAA="}
        calls = len(spy.calls)
        assert client.post("/hooks/hubspot", data=body, headers=forged).status_code == 401
        assert len(spy.calls) == calls + 1  # the forged signature was refused by compare_digest
        # The replay window: the same request, correctly signed six minutes ago, is refused.
        old = signed(body, secret="spy-secret-123456", at=time.time() - 360)
        response = client.post("/hooks/hubspot", data=body, headers=old)
        assert response.status_code == 401 and "old" in response.get_json()["error"]

        calls = len(spy.calls)
        flow = {"events": [{"type": "record_update", "record": {"Id": "00Q000000000001AAA"}}]}
        response = client.post("/hooks/salesforce/flow", json=flow, headers={"X-Crmrules-Secret": "wrong-secret"})
        assert response.status_code == 401
        compared = [_raw(a) + _raw(b) for a, b in spy.calls[calls:]]
        assert any(b"spy-flow-secret-42" in both and b"wrong-secret" in both for both in compared)
    finally:
        store.close()
        reset_plugins()


def test_the_log_masks_a_secret_an_exception_happens_to_quote(monkeypatch: pytest.MonkeyPatch) -> None:
    from crmrules.receiver import logging as receiver_logging

    monkeypatch.setattr(receiver_logging, "_secrets", {})
    remember_secrets({"HUBSPOT_ACCESS_TOKEN": "pat-na1-0123456789abcdef"})
    record = logging.LogRecord("crmrules.test", logging.ERROR, __file__, 1,
                               "call failed: %s", ("Authorization: Bearer pat-na1-0123456789abcdef for kim@example.com",),
                               None)
    PiiFilter().filter(record)
    assert "pat-na1-0123456789abcdef" not in record.getMessage()
    assert "[secret HUBSPOT_ACCESS_TOKEN]" in record.getMessage() and "k***@example.com" in record.getMessage()


SECRETS = {"HUBSPOT_CLIENT_SECRET": "log-client-secret-7d1f0a", "SALESFORCE_FLOW_SECRET": "log-flow-secret-c4e9b2",
           "CRMRULES_STORE_KEY": "log-store-key-5a8e3c"}
EMAIL = "yujin.kim.pii@example.com"
PHONE = "010-9876-5432"


def test_secrets_and_personal_data_never_reach_the_sidecars_log(tmp_path: Path, hub: HubSpot) -> None:
    """A Salesforce lead known by email only gets the welcome task pushed to HubSpot, where no contact has that
    email: the dead letter's reason names the email, so the log must carry it, masked."""

    env = {**SECRETS, "CRMRULES_LOAD_PLUGINS": "hubspot,salesforce"}  # HUBSPOT_ACCESS_TOKEN: the hub's TOKEN
    sidecar = start(tmp_path / "sidecar", hub, [PACKS / "welcome"], env=env, settings={
        "plugins": {"hubspot": {"host": hub.url, "public_url": PUBLIC_URL, "portal_ids": [PORTAL], "timeout": 5},
                    "salesforce": {"organization_id": "00D5g000004SsJtEAK"}}})
    try:
        flow = json.dumps({"event": "created", "record": {"Id": "00Q5g000004SsJtEAK", "Email": EMAIL,
                                                          "Phone": PHONE, "LastName": "김"}}).encode()
        headers = {"Content-Type": "application/json"}
        assert post(sidecar.url, "/hooks/salesforce/flow", flow,
                    {**headers, "X-Crmrules-Secret": SECRETS["SALESFORCE_FLOW_SECRET"]})[0] == 200
        # Failures that log: a wrong Flow secret, forged and stale HubSpot signatures, a body that is not JSON.
        assert post(sidecar.url, "/hooks/salesforce/flow", flow, {**headers, "X-Crmrules-Secret": "wrong"})[0] == 401
        body = encode([notification("contact.propertyChange", 1, 1, int(time.time() * 1000),
                                    propertyName="email", propertyValue=EMAIL)])
        assert post(sidecar.url, "/hooks/hubspot", body, signed(body, secret="not-the-secret"))[0] == 401
        assert post(sidecar.url, "/hooks/hubspot", body,
                    signed(body, secret=SECRETS["HUBSPOT_CLIENT_SECRET"], at=time.time() - 900))[0] == 401
        broken = b'{"email": "' + EMAIL.encode() + b'", "phone": "' + PHONE.encode() + b'"'
        assert post(sidecar.url, "/hooks/hubspot", broken,
                    signed(broken, secret=SECRETS["HUBSPOT_CLIENT_SECRET"]))[0] == 400
        wait_until(lambda: drained(sidecar), 60, "the task for an unknown email to be dead-lettered")
        dead = rows(sidecar, "SELECT action_type FROM outbox WHERE status='dead'")
        assert {"action_type": "task"} in dead
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()
    log = sidecar.log()
    assert "y***@example.com" in log  # the dead letter was logged, with the email masked
    for name, value in {**SECRETS, "HUBSPOT_ACCESS_TOKEN": TOKEN}.items():
        assert value not in log, f"{name} is in the log"
    assert EMAIL not in log and PHONE not in log and "98765432" not in log
