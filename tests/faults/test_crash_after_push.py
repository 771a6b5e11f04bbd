"""`kill -9` of the dispatcher after the CRM applied a write but before the outbox row was marked sent.

Two places to die, both real SIGKILLs of the `crmrules serve` process:

1. in the sidecar, right after the HubSpot plugin's push returned (the CRM answered): a test-only plugin patches
   the dispatcher's `_sent` and kills its own process before `mark_sent` (tests/faults/faultplugin.py);
2. at the CRM, inside the write request after HubSpot applied it and before the answer leaves: the stand-in's
   request hook kills the sidecar, which therefore never hears the answer.

Either way the outbox row is left `sending`. After the restart the push is retried with the same idempotency
key, and HubSpot ends with one task, one tag write and one score write per lead.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path


from .hub import PACKS, HubSpot, creation_batch, deliver, drained, rows, start, wait_until

WELCOME = PACKS / "welcome"


def _wait_dead(sidecar, timeout: float = 30.0) -> None:
    wait_until(lambda: sidecar.proc.poll() is not None, timeout, "the sidecar to be killed")


def _restart_until_killed_or_ready(sidecar) -> None:
    """Start again; the retry that the next planned kill waits for may come before /readyz answers."""

    try:
        sidecar.start()
    except RuntimeError:
        if sidecar.proc.returncode != -9:
            raise


def _searches_for(hub: HubSpot, key: str) -> list[float]:
    """Times of the task searches that looked for this idempotency key."""

    found = []
    for seen in hub.requests("POST", "/crm/v3/objects/tasks/search"):
        filters = [f for g in (seen.json or {}).get("filterGroups", []) for f in g.get("filters", [])]
        if any(f.get("value") == key for f in filters):
            found.append(seen)
    return found


def _assert_one_effect_each(hub: HubSpot, sidecar, contact: str) -> None:
    assert hub.tasks_by_contact() == {contact: 1}
    keys = hub.tasks_by_key()
    assert len(keys) == 1 and list(keys.values()) == [1]
    assert hub.property_writes("crmrules_tags") == {contact: 1}
    assert hub.property_writes("crmrules_score") == {contact: 1}
    assert hub.prop(contact, "crmrules_score") == "10"
    assert hub.prop(contact, "crmrules_tags") == "신규 🌱"
    outbox = rows(sidecar, "SELECT key, action_type, status FROM outbox")
    assert sorted(r["action_type"] for r in outbox) == ["score", "tag", "task"]
    assert {r["status"] for r in outbox} == {"sent"}, outbox
    [task] = hub.state.tasks
    assert task.properties["crmrules_key"] == next(r["key"] for r in outbox if r["action_type"] == "task")


def test_killed_after_the_crm_answered_each_action_is_applied_once(tmp_path: Path, hub: HubSpot) -> None:
    """One kill per action type (task, tag, score), each right after HubSpot answered its write."""

    mark = tmp_path / "killed.txt"
    env = {"CRMRULES_FAULT_KILL_AFTER_PUSH": "task,tag,score", "CRMRULES_FAULT_MARK": str(mark)}
    [contact] = hub.contacts(1)
    sidecar = start(tmp_path / "sidecar", hub, [WELCOME], env=env)
    try:
        status, answer, _ = deliver(sidecar, creation_batch([contact], 1))
        assert status == 200 and answer["new"] == 3
        restarts = []
        for n in range(1, 4):
            _wait_dead(sidecar)
            killed = mark.read_text(encoding="utf-8").splitlines()
            assert len(killed) == n, killed
            kind, key = killed[-1].split(" ")
            row = rows(sidecar, "SELECT status, action_type FROM outbox WHERE key=?", key)[0]
            assert row == {"status": "sending", "action_type": kind}  # pushed, never marked sent
            restarts.append((time.time(), kind, key))
            _restart_until_killed_or_ready(sidecar)
        wait_until(lambda: drained(sidecar), 40, "every action to be pushed after the last restart")
        _assert_one_effect_each(hub, sidecar, contact)
        for restarted, kind, key in restarts:
            if kind == "task":
                searches = _searches_for(hub, key)
                assert len(searches) == 2, "the task was looked up by its key before and after the crash"
        # The retry of an action in doubt comes soon after the restart (not after the 60 s claim lease).
        done = rows(sidecar, "SELECT max(sent_at) AS t FROM outbox")[0]["t"]
        assert done - restarts[-1][0] < 20, f"the last retry came {done - restarts[-1][0]:.1f} s after the restart"
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()


def test_killed_while_the_crm_applies_the_write_the_retry_finds_it(tmp_path: Path, hub: HubSpot) -> None:
    """HubSpot created the task; the sidecar died before the answer reached it. The retry searches by the
    same key, finds the task and creates nothing."""

    [contact] = hub.contacts(1)
    sidecar = start(tmp_path / "sidecar", hub, [WELCOME])
    killed: list[tuple[str, str]] = []

    def kill_on_task_create(method: str, path: str, status: int) -> None:
        if method == "POST" and path == "/crm/v3/objects/tasks" and not killed:
            killed.append((method, path))
            os.kill(sidecar.proc.pid, signal.SIGKILL)

    hub.on_write = kill_on_task_create
    try:
        deliver(sidecar, creation_batch([contact], 1))
        _wait_dead(sidecar)
        assert len(hub.state.tasks) == 1  # the CRM applied it
        [row] = rows(sidecar, "SELECT key, status FROM outbox WHERE action_type='task'")
        assert row["status"] == "sending"
        hub.on_write = None
        restarted = time.time()
        sidecar.start()
        wait_until(lambda: drained(sidecar), 40, "the retry after the restart")
        _assert_one_effect_each(hub, sidecar, contact)
        searches = _searches_for(hub, row["key"])
        assert len(searches) == 2
        creates = hub.requests("POST", "/crm/v3/objects/tasks")
        creates = [r for r in creates if not r.path.endswith("/search")]
        assert len(creates) == 1
        assert json.loads(creates[0].body)["properties"]["crmrules_key"] == row["key"]
        sent_at = rows(sidecar, "SELECT sent_at FROM outbox WHERE key=?", row["key"])[0]["sent_at"]
        assert sent_at - restarted < 20
        assert sidecar.stop() == 0
    finally:
        hub.on_write = None
        sidecar.kill()
