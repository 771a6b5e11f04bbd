"""Opt-out honoured at send time (issue 16, Promises: "a delayed or quiet-hours-held message goes out after the
lead unsubscribed"), against the HubSpot stand-in (tests/standins/hubspot.py), written to by the real
hubspot-api-client: in-process with the real `Pipeline` and `Dispatcher` on a real SQLite file, and end to end
through `crmrules serve` (a subprocess) receiving signed webhooks. Emails count as sent when the stand-in's
transactional single-send endpoint took them (`HubSpotState.emails_sent`).
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from crmrules import ManualClock, Pipeline, SQLiteStore
from crmrules.config import Settings
from crmrules.language import load_pack
from crmrules.outbox import Dispatcher

from ..core.helpers import T0, ev
from ..standins.hubspot import HubSpotState
from ..support import sidecar as sidecar_module
from ..support.servers import RunningServer
from .conftest import CLIENT_SECRET, PUBLIC_URL, TOKEN, notification, signed_headers

EMAIL_ID = 4242
PACK = """
    rules:
      - id: answer
        when: {event: question}
        then: [{message: {channel: email, subject: 답변, body: 문의 감사합니다}}]
      - id: follow-up
        when: {event: signup}
        then: [{message: {channel: email, subject: 다시 연락드립니다, body: 안녕하세요}, after: 1d}]
"""


def _pipeline(tmp_path: Path) -> Pipeline:
    folder = tmp_path / "pack"
    folder.mkdir()
    (folder / "pack.yaml").write_text(textwrap.dedent(PACK), encoding="utf-8")
    return Pipeline(SQLiteStore(tmp_path / "store.sqlite"), [load_pack(folder / "pack.yaml")],
                    clock=ManualClock(T0.timestamp()))


def _dispatcher(p: Pipeline, hubspot_server: RunningServer) -> Dispatcher:
    settings = Settings(targets={"message": "hubspot"},
                        plugins={"hubspot": {"host": hubspot_server.url, "timeout": 5,
                                             "email_template_ids": {"default": EMAIL_ID}}})
    return Dispatcher(p.store, settings, clock=p.clock, send_check=p.send_check)


def _sent_to(state: HubSpotState) -> list[str]:
    return [e["message"]["to"] for e in state.emails_sent]


def test_a_retried_dead_letter_is_withheld_at_send_time(tmp_path, hubspot_server, hubspot_state) -> None:
    """Finding "'never to someone who opted out' must hold at send time": a message that was a dead letter
    (not waiting) when the lead unsubscribed, and that an operator retries afterwards, is re-checked by the
    dispatcher just before the push: cancelled with the reason, recorded as a blocked decision, never sent."""

    hubspot_state.add("contacts", {"email": "kim@example.com"})
    p = _pipeline(tmp_path)
    dispatcher = _dispatcher(p, hubspot_server)
    p.replay([ev("question", 1)], live=True)
    [row] = p.store.outbox_rows()
    p.store.mark_dead(row["key"], "HubSpot was down")
    p.replay([ev("record_update", 2, unsubscribed=True)], live=True)
    assert p.store.retry_dead() == 1

    assert dispatcher.run_once(time.time() + 1) == 1  # retry_dead makes it due at wall-clock now
    assert [o.status for o in dispatcher.last] == ["cancelled"]
    assert hubspot_state.emails_sent == []
    [row] = p.store.outbox_rows()
    assert (row["status"], row["last_error"]) == ("cancelled", "consent: lead unsubscribed, email message not sent")
    [stop] = [d for d in p.store.all_decisions() if d.outcome == "blocked"]
    assert stop.rule == "answer" and stop.reason.endswith("withheld at send time")


def test_a_delayed_message_goes_to_a_lead_who_did_not_opt_out(tmp_path, hubspot_server, hubspot_state) -> None:
    """Finding "opt-out at send time" (the other side): the check stops only what consent forbids, so the
    test above cannot pass by sending nothing at all."""

    hubspot_state.add("contacts", {"email": "kim@example.com"})
    p = _pipeline(tmp_path)
    dispatcher = _dispatcher(p, hubspot_server)
    p.replay([ev("signup", 0), ev("record_update", 2, company="에이스상사")], until=T0.timestamp() + 25 * 3600, live=True)
    assert dispatcher.run_once(T0.timestamp() + 23 * 3600) == 0  # not due yet
    assert dispatcher.run_once(T0.timestamp() + 25 * 3600) == 1
    assert _sent_to(hubspot_state) == ["kim@example.com"]


# ---------------------------------------------------------------- acceptance: through `crmrules serve`

SIDECAR_PACK = """
    rules:
      - id: welcome-later
        when: {event: created}
        then: [{message: {channel: email, subject: 가입을 환영합니다, body: 안녕하세요}, after: 3s}]
"""


def _created(contact_id: int, email: str, first_event: int, at_ms: int) -> list[dict[str, Any]]:
    return [notification("contact.creation", object_id=contact_id, event_id=first_event, occurredAt=at_ms),
            notification("contact.propertyChange", object_id=contact_id, event_id=first_event + 1,
                         occurredAt=at_ms, propertyName="email", propertyValue=email)]


def _post(running: Any, notifications: list[dict[str, Any]]) -> None:
    body = json.dumps(notifications, ensure_ascii=False).encode("utf-8")
    status, _, answer = running.post("/hooks/hubspot", data=body, headers=signed_headers(body))
    assert status == 200, answer


def _wait_for(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
def running(tmp_path: Path, hubspot_server: RunningServer):
    folder = tmp_path / "pack"
    folder.mkdir()
    (folder / "pack.yaml").write_text(textwrap.dedent(SIDECAR_PACK), encoding="utf-8")
    config = {
        "rules": [str(folder)],
        "targets": {"default": "hubspot"},
        "plugins": {"hubspot": {"host": hubspot_server.url, "public_url": PUBLIC_URL, "portal_ids": [62515],
                                "timeout": 5, "email_template_ids": {"default": EMAIL_ID}}},
    }
    env = {"HUBSPOT_CLIENT_SECRET": CLIENT_SECRET, "HUBSPOT_ACCESS_TOKEN": TOKEN, "CRMRULES_LOAD_PLUGINS": "hubspot"}
    with sidecar_module.start_sidecar(tmp_path / "sidecar", config, env=env) as sidecar:
        yield sidecar


def test_a_lead_who_unsubscribes_while_a_delayed_message_waits_never_receives_it(running, hubspot_state) -> None:
    """Acceptance of issue 16 (Promises, "opt-out is not honoured for messages already waiting"): two contacts
    are created and each gets a welcome email delayed by 3 s; one of them opts out (`hs_email_optout`) while
    it waits. The other one's email goes; the one who opted out never gets hers, and the store has a blocked
    decision saying the waiting message was cancelled."""

    kim = hubspot_state.add("contacts", {"email": "kim@example.com"})
    lee = hubspot_state.add("contacts", {"email": "lee@example.com"})
    now_ms = int(time.time() * 1000)
    _post(running, _created(int(kim.id), "kim@example.com", 1, now_ms)
          + _created(int(lee.id), "lee@example.com", 11, now_ms))
    time.sleep(0.5)
    _post(running, [notification("contact.propertyChange", object_id=int(kim.id), event_id=21,
                                 occurredAt=now_ms + 500, propertyName="hs_email_optout", propertyValue="true")])

    _wait_for(lambda: "lee@example.com" in _sent_to(hubspot_state), timeout=20)
    time.sleep(1.5)  # kim's email was due at the same moment: give it every chance to (wrongly) go
    assert _sent_to(hubspot_state) == ["lee@example.com"]

    with sqlite3.connect(f"file:{running.store_path}?mode=ro", uri=True) as db:
        statuses = sorted(db.execute("SELECT status, coalesce(last_error, '') FROM outbox").fetchall())
        reasons = [r[0] for r in db.execute("SELECT reason FROM decisions WHERE outcome = 'blocked'")]
    assert statuses == [("cancelled", "consent: lead unsubscribed, email message not sent"), ("sent", "")]
    assert reasons == ["consent: lead unsubscribed, email message not sent; 1 waiting message cancelled"]
