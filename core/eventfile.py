"""Reading event files for replays (`crmrules run`, the demo): JSON Lines or CSV, one event per line.

The format is docs/event-files.md. Both forms take the same fields: `id` (default `<file name>:<line>`),
`type`, `at` (or `occurred_at`: ISO 8601 with a zone), `source` (default `import`), who it is about (`lead`,
`account` or `deal` with an email or a mapping of ids, or `subject: {kind, ids}`; in a CSV the id columns
email, hubspot_id, salesforce_id, anonymous_id, user_id and an optional `kind`), `related` (JSONL only) and
`props` (or `properties`; in a CSV every other column).

Every line is validated as the inbox would hold it before anything is stored: a bad line is reported with its
number and the reason and skipped, so it can neither stop the replay nor be stored to break a later one.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from .models import ENTITY_KINDS, Event

ID_COLUMNS = ("email", "hubspot_id", "salesforce_id", "anonymous_id", "user_id")
"""CSV columns that are ids of the record the line is about, not properties."""

SHORT_NAMES = {"at": "occurred_at", "props": "properties"}
"""The short field names of an event file and the `Event` fields they stand for."""


class BadLine(Exception):
    def __init__(self, file: str, line: int, reason: str):
        super().__init__(f"{file}:{line}: {reason}")


def event_from_dict(data: dict[str, Any], default_source: str = "import", default_id: str | None = None) -> Event:
    """One line's fields as an `Event`; ValueError (a sentence) or ValidationError when they are not one."""

    data = dict(data)
    for short, full in SHORT_NAMES.items():
        if short in data:
            if full in data:
                raise ValueError(f"give `{short}` or `{full}`, not both")
            data[full] = data.pop(short)
    named = [kind for kind in ENTITY_KINDS if kind in data]
    if len(named) + ("subject" in data) > 1:
        raise ValueError("name who the event is about once: one of `lead`, `account`, `deal` or `subject`")
    if named:
        kind = named[0]
        ref = data.pop(kind)
        if isinstance(ref, str):
            ref = {"email": ref}
        if not isinstance(ref, dict):
            raise ValueError(f"`{kind}` is an email or a mapping of ids, e.g. {{email: kim@example.com}}")
        data["subject"] = {"kind": kind, "ids": ref}
    if "subject" not in data:
        raise ValueError("who is it about? give `lead: <email>` (or account/deal, or `subject: {kind, ids}`)")
    data.setdefault("source", default_source)
    if default_id is not None and data.get("id") in (None, ""):
        data["id"] = default_id
    return Event.model_validate(data)


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _csv_line(row: dict[str, Any], line_id: str) -> dict[str, Any]:
    """A CSV row as the fields of a JSONL line: ids to the subject, named columns as they are, the rest props."""

    row = {str(k).strip(): v.strip() for k, v in row.items() if k is not None and isinstance(v, str)}
    ids = {k: row.pop(k) for k in ID_COLUMNS if k in row}
    ids = {k: v for k, v in ids.items() if v}
    kind = row.pop("kind", "") or "lead"
    data: dict[str, Any] = {}
    for name in ("id", "type", "at", "occurred_at", "source"):
        if name in row:
            value = row.pop(name)
            if value:
                data[name] = value
    data.setdefault("id", line_id)
    data["subject"] = {"kind": kind, "ids": ids}
    data["properties"] = {k: v for k, v in row.items() if v not in ("", None)}
    return data


def read_events(path: str | Path, errors: list[str] | None = None) -> Iterator[Event]:
    """Events of a .jsonl/.json or .csv file; bad lines go to `errors` (or raise when it is None)."""

    path = Path(path)
    name = str(path)

    def bad(line: int, reason: str) -> None:
        if errors is None:
            raise BadLine(name, line, reason)
        errors.append(f"{name}:{line}: {reason}")

    with path.open(encoding="utf-8-sig", newline="") as handle:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(handle)
            for row in reader:
                n = reader.line_num
                if None in row:
                    bad(n, f"{len(row[None])} more value(s) than the header has columns")
                    continue
                try:
                    yield event_from_dict(_csv_line(row, f"{path.name}:{n}"))
                except ValidationError as exc:
                    bad(n, _explain(exc))
                except ValueError as exc:
                    bad(n, str(exc))
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
            except RecursionError:
                bad(n, "not JSON this parser can read: nested too deeply")
                continue
            if not isinstance(data, dict):
                bad(n, "each line is one JSON object")
                continue
            try:
                yield event_from_dict(data, default_id=f"{path.name}:{n}")
            except ValidationError as exc:
                bad(n, _explain(exc))
            except ValueError as exc:
                bad(n, str(exc))
