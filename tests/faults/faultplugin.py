"""Fault hooks loaded into a `crmrules serve` subprocess with CRMRULES_PLUGINS_PATH=<this file>. Test-only.

Each hook is off unless its environment variable is set, so the sidecar otherwise runs unchanged:

- `CRMRULES_FAULT_KILL_AFTER_PUSH=<action type>[,<type>...]` with `CRMRULES_FAULT_MARK=<file>`: the first time
  a push of one of those action types *returns* (the CRM applied it and answered), the process kills itself
  with SIGKILL before the dispatcher can mark the outbox row sent (it patches the dispatcher's `_sent`). The mark file (one line per kill: the
  idempotency key) makes it happen once per action type, across restarts.
- `CRMRULES_FAULT_READONLY_FLAG=<file>`: while that file exists, every store connection is switched to
  `PRAGMA query_only=ON`, so SQLite refuses writes ("attempt to write a readonly database") exactly as on a
  read-only file; when it is removed, writes are allowed again. Switched between transactions only.
- `CRMRULES_FAULT_READONLY_AFTER_PUSH=<action type>` (with the flag above): the first push of that type that
  returns creates the flag file, so the dispatcher cannot record that the CRM applied it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

_KILL_TYPES = {t.strip() for t in os.environ.get("CRMRULES_FAULT_KILL_AFTER_PUSH", "").split(",") if t.strip()}
_MARK = os.environ.get("CRMRULES_FAULT_MARK")
_READONLY = os.environ.get("CRMRULES_FAULT_READONLY_FLAG")
_READONLY_AFTER = os.environ.get("CRMRULES_FAULT_READONLY_AFTER_PUSH")


def _killed_types() -> set[str]:
    if not _MARK or not Path(_MARK).exists():
        return set()
    return {line.split(" ", 1)[0] for line in Path(_MARK).read_text(encoding="utf-8").splitlines() if line}


if _KILL_TYPES or (_READONLY and _READONLY_AFTER):
    # Pushes are not a hook any more (targets are registered by name), so the fault sits where the dispatcher
    # records a push that returned: after the CRM answered, before `mark_sent`.
    from crmrules.outbox.dispatcher import Dispatcher

    _original_sent = Dispatcher._sent
    _flagged: list[str] = []

    def _sent(self: Dispatcher, item: Any, target: str | None, result: str, seconds: float) -> Any:
        kind = item.action.type
        if not item.shadow and kind in _KILL_TYPES and kind not in _killed_types():
            with open(_MARK or os.devnull, "a", encoding="utf-8") as mark:
                mark.write(f"{kind} {item.idempotency_key}\n")
                mark.flush()
                os.fsync(mark.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        if _READONLY and not item.shadow and kind == _READONLY_AFTER and not _flagged:
            _flagged.append(item.idempotency_key)
            Path(_READONLY).write_text(item.idempotency_key, encoding="utf-8")
        return _original_sent(self, item, target, result, seconds)

    Dispatcher._sent = _sent  # type: ignore[method-assign]  # the fault is this very replacement


if _READONLY:
    from crmrules.store.sqlite import SQLiteStore

    _original_conn = SQLiteStore._conn

    def _conn(self: SQLiteStore) -> Any:
        conn = _original_conn(self)
        if getattr(self._local, "depth", 0) == 0:  # never in the middle of a transaction
            readonly = os.path.exists(_READONLY)  # type: ignore[arg-type]
            if getattr(self._local, "readonly", False) != readonly:
                conn.execute(f"PRAGMA query_only={'ON' if readonly else 'OFF'}")
                self._local.readonly = readonly
        return conn

    SQLiteStore._conn = _conn  # type: ignore[method-assign]
