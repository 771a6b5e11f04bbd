"""The store cannot write: the receiver answers 503 with Retry-After, keeps what it had accepted, and takes events
again as soon as it can write.

- Disk full is real: the store lives on a small tmpfs mounted for the test, and a filler file takes the rest of
  it. Mounting needs root (or CAP_SYS_ADMIN); where the test cannot mount, it is skipped and says so.
- Read-only: remounting a filesystem read-only is refused while the sidecar holds its files open for writing,
  and root ignores file modes, so the closest real thing is used: every store connection of the sidecar is
  switched to `PRAGMA query_only` while a flag file exists (tests/faults/faultplugin.py); SQLite then refuses
  writes with "attempt to write a readonly database", the same error as a read-only file.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from .hub import (PACKS, HubSpot, creation_batch, deliver, drained, encode, event_ids, inbox, notification, post,
                  rows, signed, start, wait_until)

WELCOME = PACKS / "welcome"


def _padded_batch(contact_ids: list[str], first_event_id: int, pad: int = 40_000) -> list[dict]:
    """New contacts (each earns one task) plus a long property value each, so the store grows fast."""

    batch = creation_batch(contact_ids, first_event_id)
    for n, cid in enumerate(contact_ids):
        batch.append(notification("contact.propertyChange", int(cid), first_event_id + 1000 + n,
                                  batch[0]["occurredAt"] + 5_000, propertyName="message",
                                  propertyValue="메모 " + "가나다라마바사 " * (pad // 8)))
    return batch


def _send_once(sidecar, batch: list[dict]) -> tuple[int, dict[str, str], dict]:
    body = encode(batch)
    status, headers, answer = post(sidecar.url, "/hooks/hubspot", body, signed(body))
    return status, headers, json.loads(answer or b"{}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "disk"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill a disk for real: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(disk: Path) -> Path:
    """Write a file until the filesystem says ENOSPC."""

    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        chunk = b"\0" * 65536
        while True:
            try:
                out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                chunk = chunk[: len(chunk) // 2]
                if len(chunk) < 512:
                    break
    return filler


def test_disk_full_answers_503_keeps_what_was_accepted_and_recovers(tmp_path: Path, small_disk: Path,
                                                                    hub: HubSpot) -> None:
    contacts = hub.contacts(40)
    sidecar = start(tmp_path / "sidecar", hub, [WELCOME], settings={"store": str(small_disk / "crmrules.sqlite")})
    try:
        first = _padded_batch(contacts[:2], 1)
        assert deliver(sidecar, first)[0] == 200
        wait_until(lambda: drained(sidecar), 30, "the first batch")
        filler = _fill(small_disk)

        accepted, refused = [first], []
        for n in range(2, 40, 2):  # until the disk refuses (the WAL may have reusable room at first)
            batch = _padded_batch(contacts[n:n + 2], 1 + 10 * n)
            status, headers, answer = _send_once(sidecar, batch)
            assert status in (200, 503), (status, answer)
            if status == 503:
                assert headers.get("Retry-After") == "5" and "store" in answer["error"]
                refused.append(batch)
            else:
                accepted.append(batch)
            if len(refused) >= 3:
                break
        assert refused, "the full disk never refused a write"
        # Nothing accepted before is gone, and nothing of a refused batch was half-written.
        seen = inbox(sidecar)
        assert all(k in seen for batch in accepted for k in event_ids(batch))
        assert not any(k in seen for batch in refused for k in event_ids(batch))

        filler.unlink()  # space returns; the sender tries again, as HubSpot does after a 503
        for batch in refused:
            assert deliver(sidecar, batch, deadline=60)[0] == 200
        wait_until(lambda: drained(sidecar), 60, "everything after the space came back")
        seen = inbox(sidecar)
        assert {seen[k] for batch in accepted + refused for k in event_ids(batch)} == {"done"}
        created = [c for batch in accepted + refused for c in {str(n["objectId"]) for n in batch}]
        assert hub.tasks_by_contact() == {c: 1 for c in created}
        status, _, _ = sidecar.get("/readyz")
        assert status == 200
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()


def test_read_only_store_answers_503_and_recovers(tmp_path: Path, hub: HubSpot) -> None:
    flag = tmp_path / f"readonly-{uuid.uuid4().hex[:6]}"
    contacts = hub.contacts(6)
    sidecar = start(tmp_path / "sidecar", hub, [WELCOME], env={"CRMRULES_FAULT_READONLY_FLAG": str(flag)})
    try:
        before = creation_batch(contacts[:2], 1)
        assert deliver(sidecar, before)[0] == 200
        flag.touch()  # from now on the sidecar's store refuses writes
        during = creation_batch(contacts[2:4], 101)
        for _ in range(3):
            status, headers, answer = _send_once(sidecar, during)
            assert status == 503 and headers.get("Retry-After") == "5", (status, answer)
        status, _, body = sidecar.get("/readyz")
        assert status == 503 and "does not take writes" in json.loads(body)["checks"]["store"]
        seen = inbox(sidecar)
        assert all(k in seen for k in event_ids(before))
        assert not any(k in seen for k in event_ids(during))

        os.unlink(flag)
        assert deliver(sidecar, during)[0] == 200
        after = creation_batch(contacts[4:], 201)
        assert deliver(sidecar, after)[0] == 200
        wait_until(lambda: drained(sidecar), 60, "everything after the store took writes again")
        seen = inbox(sidecar)
        assert {seen[k] for b in (before, during, after) for k in event_ids(b)} == {"done"}
        assert hub.tasks_by_contact() == {c: 1 for c in contacts}
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()


def test_an_outcome_the_store_could_not_record_is_retried_soon_with_the_same_key(tmp_path: Path,
                                                                                 hub: HubSpot) -> None:
    """HubSpot created the task; then the store refused the write that marks it sent. When the store takes writes
    again the task is pushed again at once (not after the 60 s claim lease), found by its key, not doubled."""

    flag = tmp_path / "readonly-after-push"
    [contact] = hub.contacts(1)
    sidecar = start(tmp_path / "sidecar", hub, [WELCOME],
                    env={"CRMRULES_FAULT_READONLY_FLAG": str(flag), "CRMRULES_FAULT_READONLY_AFTER_PUSH": "task"})
    try:
        assert deliver(sidecar, creation_batch([contact], 1))[0] == 200
        wait_until(flag.exists, 30, "the task push (after which the store refuses writes)")
        key = flag.read_text(encoding="utf-8")
        assert len(hub.state.tasks) == 1
        wait_until(lambda: "readonly" in sidecar.log(), 30, "the failed write to be logged")
        [row] = rows(sidecar, "SELECT status FROM outbox WHERE key=?", key)
        assert row["status"] == "sending"  # applied at HubSpot, not recorded here
        restored = time.time()
        os.unlink(flag)
        wait_until(lambda: drained(sidecar), 30, "the outbox to drain once the store takes writes")
        [row] = rows(sidecar, "SELECT status, sent_at, result FROM outbox WHERE key=?", key)
        assert row["status"] == "sent" and row["sent_at"] - restored < 20 and "already" in row["result"]
        assert hub.tasks_by_contact() == {contact: 1}
        assert [t.properties["crmrules_key"] for t in hub.state.tasks] == [key]
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()
