"""Reading event files for replays: JSON Lines or CSV, one event per line.

A JSONL line is an `Event` (`id`, `type`, `occurred_at`, `subject`, `properties`), or the short form with
`lead`/`account`/`deal` giving the subject's ids, `at` for `occurred_at`, and `props` for `properties`.
A CSV has columns id, type, occurred_at and email (or hubspot_id, salesforce_id, anonymous_id); other columns
are properties. A bad line is reported with its number and skipped; it never stops the replay.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from .models import Event

ID_COLUMNS = ("email", "hubspot_id", "salesforce_id", "anonymous_id", "user_id")


class BadLine(Exception):
    def __init__(self, file: str, line: int, reason: str):
        super().__init__(f"{file}:{line}: {reason}")


def event_from_dict(data: dict[str, Any], default_source: str = "import") -> Event:
    data = dict(data)
    if "subject" not in data:
        for kind in ("lead", "account", "deal"):
            if kind in data:
                ref = data.pop(kind)
                data["subject"] = {"kind": kind, "ids": ref if isinstance(ref, dict) else {"email": ref}}
                break
    if "at" in data and "occurred_at" not in data:
        data["occurred_at"] = data.pop("at")
    if "props" in data and "properties" not in data:
        data["properties"] = data.pop("props")
    data.setdefault("source", default_source)
    return Event.model_validate(data)


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def read_events(path: str | Path, errors: list[str] | None = None) -> Iterator[Event]:
    """Events of a .jsonl/.json or .csv file; bad lines go to `errors` (or raise when it is None)."""

    path = Path(path)
    name = str(path)

    def bad(line: int, reason: str) -> None:
        if errors is None:
            raise BadLine(name, line, reason)
        errors.append(f"{name}:{line}: {reason}")

    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".csv":
            for n, row in enumerate(csv.DictReader(handle), start=2):
                ids = {k: row.pop(k) for k in ID_COLUMNS if row.get(k)}
                for k in ID_COLUMNS:
                    row.pop(k, None)
                kind = row.pop("kind", None) or "lead"
                try:
                    yield Event.model_validate({
                        "id": row.pop("id", None) or f"{name}:{n}", "type": row.pop("type", None),
                        "occurred_at": row.pop("occurred_at", None), "source": row.pop("source", None) or "import",
                        "subject": {"kind": kind, "ids": ids}, "properties": {k: v for k, v in row.items() if v != ""},
                    })
                except ValidationError as exc:
                    bad(n, _explain(exc))
            return
        for n, text in enumerate(handle, start=1):
            text = text.strip()
            if not text or text.startswith("#"):
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                bad(n, f"not JSON: {exc.msg} at column {exc.colno}")
                continue
            if not isinstance(data, dict):
                bad(n, "each line is one JSON object")
                continue
            try:
                yield event_from_dict(data)
            except ValidationError as exc:
                bad(n, _explain(exc))
