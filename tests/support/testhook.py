"""Helpers for tests that drive a sidecar with the test plugin (tests/support/testhook_plugin.py).

    sidecar = start_sidecar(tmp_path, config(target), env=ENV)
    sidecar.post("/hooks/test", signup("kim@example.com"), KEY)
    wait_until(lambda: pushed_for(target, "kim@example.com"))
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests.support.sidecar import Sidecar
from tests.support.target import Received, ScriptedTarget
from tests.support.waiting import wait_until  # noqa: F401  (re-exported for the dispatcher tests)

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "tests" / "packs" / "sidecar"
ENV = {"CRMRULES_PLUGINS_PATH": str(ROOT / "tests" / "support" / "testhook_plugin.py"),
       "CRMRULES_LOAD_PLUGINS": ""}  # only the test plugin: the in-repo adapters are tested on their own
KEY = {"X-Test-Key": "k1"}
MAX_BODY = 4096
_ids = itertools.count(1)


def config(target: ScriptedTarget, **extra: Any) -> dict[str, Any]:
    """crmrules.yaml for the sidecar test pack, tasks pushed to `target`; `testhook={...}` adds plugin options."""

    return {"rules": [str(PACK)], "targets": {"task": "testhook"}, "max_body_bytes": MAX_BODY,
            "plugins": {"testhook": {"key": "k1", "url": target.url, **extra.pop("testhook", {})}}, **extra}


def signup(email: str, event_id: str | None = None) -> dict[str, Any]:
    return {"events": [{"id": event_id or f"ev-{next(_ids)}-{time.time_ns()}", "type": "signup", "email": email}]}


def inbox_rows(sidecar: Sidecar, event_id: str) -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(sidecar.store_path)) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM inbox WHERE source='testhook' AND key=?", (event_id,)).fetchall()


def outbox_of(sidecar: Sidecar, email: str) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(sidecar.store_path)) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM outbox")]
    return [r for r in rows if json.loads(r["body"])["identities"].get("email") == email]


def pushed_for(target: ScriptedTarget, email: str) -> list[Received]:
    return [r for r in target.successes() if (r.body or {}).get("identities", {}).get("email") == email]


