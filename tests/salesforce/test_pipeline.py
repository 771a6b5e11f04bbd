"""In process, the whole path with the core's real pieces: receiver app → inbox → pipeline (the hot-lead pack)
→ outbox → the real Dispatcher → the salesforce target → simple-salesforce → the stand-in. Faster than the sidecar
subprocess, and able to look at the dispatcher's verdicts (retry with Salesforce's wait, then sent once)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from crmrules.outbox import Dispatcher

from ..standins.salesforce import SalesforceState
from .conftest import PACKS, Receiver
from .envelopes import ACK, envelope, lead_envelope, notification, notification_id

OUTBOUND = "/hooks/salesforce/outbound"


@pytest.fixture
def stack(tmp_path: Path, options: dict[str, Any]) -> Iterator[Receiver]:
    receiver = Receiver(tmp_path, options, packs=[PACKS / "hot-lead"])
    yield receiver
    receiver.close()


def dispatch(stack: Receiver, now: float | None = None) -> list[Any]:
    dispatcher = Dispatcher(stack.store, stack.settings, clock=stack.clock)
    dispatcher.run_once(now if now is not None else time.time())
    return dispatcher.last


def test_throttled_task_is_retried_after_the_limit_wait_and_created_once(stack: Receiver,
                                                                         sf_state: SalesforceState) -> None:
    lead = sf_state.add("Lead", {"FirstName": "유진", "LastName": "김", "Company": "가나다"}).id
    body = lead_envelope(lead, FirstName="유진", LastName="김", Company="가나다", Rating="Hot")
    assert stack.post(OUTBOUND, body).data == ACK
    stack.process()

    sf_state.queue_request_limit_exceeded(path_prefix="/services/data/v59.0/sobjects/Task")
    now = time.time()
    first = {o.detail.split(":")[0]: o for o in dispatch(stack, now)}
    retried = [o for o in first.values() if o.status == "retry"]
    assert len(retried) == 1 and "REQUEST_LIMIT_EXCEEDED" in retried[0].detail
    assert retried[0].next_at is not None and retried[0].next_at >= now + 900
    assert sf_state.tasks == []

    assert dispatch(stack, now + 60) == []  # not due yet
    [later] = dispatch(stack, now + 1000)
    assert later.status == "sent" and later.detail.startswith("Task ")
    [task] = sf_state.tasks
    assert task.fields["WhoId"] == lead and task.fields["Subject"] == "김유진님에게 전화하기 (Hot)"
    assert sf_state.get("Lead", lead).fields["Crmrules_Tags__c"] == "관심 높음"


def test_after_conversion_pushes_go_to_the_contact(stack: Receiver, sf_state: SalesforceState) -> None:
    contact = sf_state.add("Contact", {"FirstName": "유진", "LastName": "김"}).id
    lead = sf_state.add("Lead", {"LastName": "김", "Company": "가나다", "IsConverted": True,
                                 "ConvertedContactId": contact}).id
    stack.post(OUTBOUND, lead_envelope(lead, nid=notification_id(1), LastName="김", Rating="Warm"))
    stack.post(OUTBOUND, lead_envelope(lead, nid=notification_id(2), IsConverted=True, ConvertedContactId=contact))
    stack.process()
    [(_id, _kind, state)] = stack.leads()
    assert state["identities"]["salesforce_id"] == contact

    # The rep now rates the person Hot on the Contact: one lead, and the task lands on the Contact.
    rated = envelope([notification(notification_id(3), "Contact", {"Id": contact, "Rating": "Hot"})])
    assert stack.post(OUTBOUND, rated).data == ACK
    stack.process()
    assert len(stack.leads()) == 1
    outcomes = dispatch(stack)
    assert {o.status for o in outcomes} == {"sent"}
    [task] = sf_state.tasks
    assert task.fields["WhoId"] == contact
