"""The CRM misbehaves while a real sidecar pushes to it: 429 with Retry-After, 500, an answer slower than the
client's timeout (after the write was applied), connection refused. Each is retried with backoff or dead-lettered
with its reason; nothing is lost or doubled; the receiver keeps answering webhooks meanwhile.

tests/test_dispatcher.py checks the backoff arithmetic and the dead-letter commands against a generic target;
tests/hubspot/test_push.py checks how the HubSpot plugin classifies each fault. Here the whole chain runs:
signed webhook → real `crmrules serve` → real hubspot-api-client → the stand-in with faults injected.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from .hub import PACKS, HubSpot, creation_batch, deliver, drained, outbox_counts, rows, start, wait_until

WELCOME = PACKS / "welcome"
TASKS = "/crm/v3/objects/tasks"


def _task_row(sidecar) -> dict:
    """The task's outbox row ({} until the event was evaluated)."""

    found = rows(sidecar, "SELECT key, status, attempts, last_error, next_at, sent_at FROM outbox "
                          "WHERE action_type='task'")
    assert len(found) <= 1, found
    return found[0] if found else {}


def test_429_with_retry_after_then_500_then_one_task(tmp_path: Path, hub: HubSpot) -> None:
    [contact] = hub.contacts(1)
    hub.state.queue_rate_limit(retry_after=2, path_prefix=TASKS)
    hub.state.queue_fault(500, path_prefix=TASKS)
    sidecar = start(tmp_path / "sidecar", hub, [WELCOME])
    try:
        deliver(sidecar, creation_batch([contact], 1))
        wait_until(lambda: _task_row(sidecar).get("status") == "sent", 40, "the task after a 429 and a 500")
        row = _task_row(sidecar)
        assert row["attempts"] == 3 and row["last_error"] is None
        assert hub.tasks_by_contact() == {contact: 1}
        calls = [(t, p) for t, _m, p in hub.times if p.startswith(TASKS)]
        limited = next(seen for seen in hub.requests(prefix=TASKS) if seen.status == 429)
        assert limited is not None
        # Retry-After: 2 was honoured: no call to the tasks API in the two seconds after the 429.
        first = calls[0][0]
        assert calls[1][0] - first >= 2.0 - 0.05, calls
        wait_until(lambda: drained(sidecar), 30, "the outbox to drain")
        assert outbox_counts(sidecar) == {"sent": 3}
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()


def test_always_500_is_dead_lettered_with_its_reason_and_the_rest_goes_on(tmp_path: Path, hub: HubSpot) -> None:
    [contact] = hub.contacts(1)
    hub.state.queue_fault(500, path_prefix=TASKS, times=1000)
    sidecar = start(tmp_path / "sidecar", hub, [WELCOME], settings={"max_attempts": 3})
    try:
        deliver(sidecar, creation_batch([contact], 1))
        wait_until(lambda: _task_row(sidecar).get("status") == "dead", 40, "the task to be dead-lettered")
        row = _task_row(sidecar)
        assert row["attempts"] == 3
        assert row["last_error"].startswith("gave up after 3 attempts") and "500" in row["last_error"], row
        tries = [t for t, _m, p in hub.times if p.startswith(TASKS)]
        assert len(tries) == 3  # one call per attempt (the search failed each time), no more
        wait_until(lambda: drained(sidecar), 30, "the other actions")
        assert outbox_counts(sidecar) == {"sent": 2, "dead": 1}  # the tag and the score were not held up
        assert hub.state.tasks == []
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()


def test_an_answer_slower_than_the_timeout_after_the_write_is_retried_and_finds_the_task(tmp_path: Path,
                                                                                       hub: HubSpot) -> None:
    """HubSpot created the task but answered after the client gave up; the retry must not create another."""

    [contact] = hub.contacts(1)
    release = threading.Event()
    slowed: list[str] = []

    def slow_create(method: str, path: str, status: int) -> None:
        if method == "POST" and path == TASKS and not slowed:
            slowed.append(path)
            release.wait(4.0)  # the client's timeout is 1 s

    hub.on_write = slow_create
    sidecar = start(tmp_path / "sidecar", hub, [WELCOME], timeout=1, search_lag=2)
    try:
        deliver(sidecar, creation_batch([contact], 1))
        wait_until(lambda: _task_row(sidecar).get("status") == "sent", 40, "the task after the timeout")
        release.set()
        row = _task_row(sidecar)
        assert slowed and row["attempts"] == 2
        assert len(hub.state.tasks) == 1 and hub.tasks_by_contact() == {contact: 1}
        creates = [r for r in hub.requests("POST", TASKS) if r.path == TASKS]
        assert len(creates) == 1
        # The retry waited for HubSpot's search to catch up (search_lag), then found the task by its key.
        create_at = next(t for t, m, p in hub.times if m == "POST" and p == TASKS)
        searched_at = [t for t, m, p in hub.times if p == TASKS + "/search"]
        assert len(searched_at) == 2 and searched_at[1] - create_at >= 2.0 - 0.05
        assert sidecar.stop() == 0
    finally:
        release.set()
        hub.on_write = None
        sidecar.kill()


def test_connection_refused_is_retried_and_the_receiver_keeps_accepting(tmp_path: Path, hub: HubSpot) -> None:
    contacts = hub.contacts(4)
    sidecar = start(tmp_path / "sidecar", hub, [WELCOME], settings={"max_attempts": 20})
    hub.stop()  # nothing listens on the CRM's port now
    try:
        for n, contact in enumerate(contacts):
            status, answer, attempts = deliver(sidecar, creation_batch([contact], 1 + 2 * n))
            assert status == 200 and answer["new"] == 3 and attempts == 1  # accepted at once, CRM down or not

        def refused_and_waiting():
            waiting = rows(sidecar, "SELECT status, attempts, last_error FROM outbox")
            return len(waiting) == 12 and all(r["status"] in ("pending", "sending") for r in waiting) and \
                all(r["attempts"] >= 1 and "unreachable" in (r["last_error"] or "") for r in waiting) and \
                any(r["attempts"] >= 2 for r in waiting)

        wait_until(refused_and_waiting, 30, "pushes to fail with connection refused and wait to be retried")
        hub.restart()
        wait_until(lambda: drained(sidecar), 60, "every action after the CRM came back")
        assert outbox_counts(sidecar) == {"sent": 12}
        assert hub.tasks_by_contact() == {c: 1 for c in contacts}
        assert hub.property_writes("crmrules_score") == {c: 1 for c in contacts}
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()
