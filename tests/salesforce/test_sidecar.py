"""`crmrules serve` end to end with the Salesforce plugin: an Outbound Message in, its ACK back, and, through
simple-salesforce inside the sidecar process, a Task linked to the Lead on the stand-in (plus a tag).

The stand-in listens on https (a throw-away certificate the subprocess trusts via REQUESTS_CA_BUNDLE), so the
plugin runs unmodified, configured only by environment variables and crmrules.yaml, as in production.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from ..standins import salesforce as sf_standin
from .conftest import FLOW_SECRET, PACKS, SESSION_ID
from .envelopes import ACK, ORG_ID, envelope, lead_envelope, notification, notification_id
from .tls import TlsServer, serve_tls

sidecar_module = pytest.importorskip("tests.support.sidecar", reason="tests/support/sidecar.py is not there yet")

HOT_LEAD = PACKS / "hot-lead"
SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, why: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out {why()}")


def outbox(store: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        return db.execute("SELECT action_type, status, coalesce(result, last_error, '') FROM outbox "
                          "ORDER BY created_at").fetchall()


def inbox(store: Path) -> int:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM inbox WHERE source = 'salesforce'").fetchone()[0])


@pytest.fixture
def https_standin(tmp_path: Path) -> Iterator[TlsServer]:
    server = serve_tls(sf_standin.create_app(session_id=SESSION_ID, org_id=ORG_ID), tmp_path)
    yield server
    server.stop()


@pytest.fixture
def sidecar(tmp_path: Path, https_standin: TlsServer):
    config = {"rules": [str(HOT_LEAD)], "targets": {"default": "salesforce"},
              "plugins": {"salesforce": {"organization_id": ORG_ID, "timezone": "Asia/Seoul", "timeout": 5}}}
    env = {"SALESFORCE_INSTANCE_URL": https_standin.url, "SALESFORCE_SESSION_ID": SESSION_ID,
           "SALESFORCE_FLOW_SECRET": FLOW_SECRET, "REQUESTS_CA_BUNDLE": str(https_standin.ca_file),
           "CRMRULES_LOAD_PLUGINS": "salesforce"}
    with sidecar_module.start_sidecar(tmp_path / "sidecar", config, env=env) as running:
        yield running


def test_outbound_message_is_acked_and_a_hot_lead_gets_a_task(sidecar: Any, https_standin: TlsServer) -> None:
    state: sf_standin.SalesforceState = https_standin.app.config["STATE"]
    lead = state.add("Lead", {"FirstName": "유진", "LastName": "김", "Company": "가나다 주식회사",
                              "Email": "kim@example.com"})
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    body = lead_envelope(lead.id, nid=notification_id(1), FirstName="유진", LastName="김", Company="가나다 주식회사",
                         Email="kim@example.com", Rating="Hot", LastModifiedDate=now)

    status, headers, answer = sidecar.post("/hooks/salesforce/outbound", data=body, headers=SOAP_HEADERS)

    assert (status, answer) == (200, ACK), sidecar.log()
    assert headers["Content-Type"] == "text/xml; charset=utf-8"
    task = wait_for(lambda: state.tasks, why=lambda: f"for the task; outbox {outbox(sidecar.store_path)}\n"
                                                       f"{sidecar.log()}")[0]
    assert task.fields["WhoId"] == lead.id
    assert task.fields["Subject"] == "김유진님에게 전화하기 (Hot)"
    assert task.fields["Priority"] == "High" and task.fields["IsReminderSet"] is True
    assert task.fields["Description"].startswith("가나다 주식회사 — Salesforce에서 Hot으로 평가됨")
    wait_for(lambda: state.get("Lead", lead.id).fields.get("Crmrules_Tags__c") == "관심 높음",
             why=lambda: str(outbox(sidecar.store_path)))
    wait_for(lambda: [s for _, s, _ in outbox(sidecar.store_path)] == ["sent", "sent"],
             why=lambda: str(outbox(sidecar.store_path)))

    # Salesforce did not see the ACK (say) and sends the envelope again, with one more notification.
    contact = state.add("Contact", {"LastName": "박"})
    again = envelope([notification(notification_id(1), "Lead", {"Id": lead.id, "Rating": "Hot"}),
                      notification(notification_id(2), "Contact", {"Id": contact.id, "LastName": "박"})])
    status, _, answer = sidecar.post("/hooks/salesforce/outbound", data=again, headers=SOAP_HEADERS)
    assert (status, answer) == (200, ACK)
    assert inbox(sidecar.store_path) == 2
    time.sleep(0.5)
    assert len(state.tasks) == 1  # the old notification did not run twice


def test_wrong_org_and_hostile_xml_are_refused_by_the_sidecar(sidecar: Any, https_standin: TlsServer) -> None:
    other = envelope([notification(notification_id(1), "Lead", {"Id": "00Q000000000009AAA"})],
                     org_id="00D000000000999AAA")
    status, _, _ = sidecar.post("/hooks/salesforce/outbound", data=other, headers=SOAP_HEADERS)
    assert status == 403
    laughs = envelope([], prolog='<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>')
    status, _, body = sidecar.post("/hooks/salesforce/outbound", data=laughs, headers=SOAP_HEADERS)
    assert status == 400 and b"DTD" in body
    assert inbox(sidecar.store_path) == 0
    assert sidecar.running
