"""Rule packs reloaded into a running sidecar with a real SIGHUP: a pack with errors is refused with its
line-numbered errors while the packs already running keep deciding; a good pack then replaces them.

The sidecar is a real `crmrules serve` subprocess; the effects are counted at the HubSpot stand-in.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from .hub import HubSpot, creation_batch, deliver, drained, start, wait_until

GOOD = """\
pack: reloadable
rules:
  - id: welcome
    when: {event: created}
    then:
      - task: {title: "환영 전화"}
"""

# Two errors on known lines: an unknown action (line 7, column 9) and a bad duration (line 9, column 46).
BAD = """\
pack: reloadable
rules:
  - id: welcome
    when: {event: created}
    then:
      - task: {title: "환영 전화"}
      - tagg: 신규
  - id: other
    when: {count: {event: page_view, within: 7x, at_least: 2}}
    then: [{score: +1}]
"""

NEXT = """\
pack: reloadable
rules:
  - id: welcome-v2
    when: {event: created}
    then:
      - tag: 두번째 판
"""


def _readyz(sidecar) -> tuple[int, dict]:
    status, _, body = sidecar.get("/readyz")
    return status, json.loads(body)


def _metric(sidecar, name: str) -> float | None:
    _, _, body = sidecar.get("/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def _reload(sidecar, since: float | None) -> dict:
    """SIGHUP, then wait until /readyz reports a reload newer than `since`."""

    sidecar.proc.send_signal(signal.SIGHUP)

    def reported():
        _, answer = _readyz(sidecar)
        last = answer.get("reload")
        return last if last and (since is None or last["at"] > since) else None

    return wait_until(reported, 30, "the reload to be reported in /readyz")


def test_a_bad_pack_is_refused_with_its_errors_and_the_running_packs_keep_running(tmp_path: Path,
                                                                                  hub: HubSpot) -> None:
    pack = tmp_path / "packs" / "reloadable"
    pack.mkdir(parents=True)
    (pack / "pack.yaml").write_text(GOOD, encoding="utf-8")
    first, second, third = hub.contacts(3)
    sidecar = start(tmp_path / "sidecar", hub, [pack])
    try:
        deliver(sidecar, creation_batch([first], 1))
        wait_until(lambda: hub.tasks_by_contact().get(first) == 1, 30, "the first welcome task")

        (pack / "pack.yaml").write_text(BAD, encoding="utf-8")
        refused = _reload(sidecar, None)
        assert refused["ok"] is False
        errors = refused["errors"]
        assert any(e.startswith(f"{pack / 'pack.yaml'}:7:9:") and "tagg" in e for e in errors), errors
        assert any(":9:46:" in e and "7x" in e for e in errors), errors
        status, answer = _readyz(sidecar)
        assert status == 200 and answer["ready"] is True and answer["rules"] == 1  # still the old program
        assert _metric(sidecar, "crmrules_rules_reload_failed") == 1.0
        assert _metric(sidecar, 'crmrules_rules_reloads_total{result="failed"}') == 1.0
        log = sidecar.log()
        assert "pack.yaml:7:9:" in log and "pack.yaml:9:46:" in log  # the operator sees where, in the log too

        # The old program still decides: a new contact gets the welcome task, and nothing of the bad pack.
        deliver(sidecar, creation_batch([second], 11))
        wait_until(lambda: hub.tasks_by_contact().get(second) == 1, 30, "the old rule to act after the refusal")
        wait_until(lambda: drained(sidecar), 30, "the outbox to drain")
        assert not hub.property_writes("crmrules_tags")

        (pack / "pack.yaml").write_text(NEXT, encoding="utf-8")
        accepted = _reload(sidecar, refused["at"])
        assert accepted["ok"] is True and accepted["rules"] == 1
        assert _metric(sidecar, "crmrules_rules_reload_failed") == 0.0
        deliver(sidecar, creation_batch([third], 21))
        wait_until(lambda: hub.prop(third, "crmrules_tags") == "두번째 판", 30, "the new rule to act")
        wait_until(lambda: drained(sidecar), 30, "the outbox to drain")
        assert third not in hub.tasks_by_contact()  # the old rule is gone
        assert hub.tasks_by_contact() == {first: 1, second: 1}
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()


def test_sighup_does_not_end_a_receive_only_process(tmp_path: Path, hub: HubSpot) -> None:
    """SIGHUP's default action ends a process; one that runs no rules (--no-worker) ignores it and says so."""

    from tests.support.sidecar import start_sidecar

    from .hub import HUBSPOT_ENV, hubspot_config

    pack = tmp_path / "packs" / "reloadable"
    pack.mkdir(parents=True)
    (pack / "pack.yaml").write_text(GOOD, encoding="utf-8")
    sidecar = start_sidecar(tmp_path / "sidecar", hubspot_config(hub, [pack]), env=HUBSPOT_ENV, args=["--no-worker"])
    try:
        sidecar.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "SIGHUP ignored" in sidecar.log(), 30, "the SIGHUP to be logged")
        assert sidecar.running and sidecar.get("/healthz")[0] == 200
        assert sidecar.stop() == 0
    finally:
        sidecar.kill()
