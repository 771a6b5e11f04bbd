"""Small builders for core tests: packs from text, events at offsets, a pipeline on a real SQLite file."""

from __future__ import annotations

import datetime as dt
import itertools
import textwrap
from pathlib import Path
from typing import Any

from crmrules import ManualClock, Pipeline, SQLiteStore
from crmrules.language import load_pack
from crmrules.models import Event

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))  # a Monday in Seoul
_ids = itertools.count(1)


def pack_file(tmp_path: Path, text: str, name: str = "pack.yaml") -> Path:
    folder = tmp_path / "pack"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def pipeline(tmp_path: Path, text: str, matcher: str = "durable") -> Pipeline:
    pack = load_pack(pack_file(tmp_path, text))
    store = SQLiteStore(tmp_path / "store.sqlite")
    return Pipeline(store, [pack], matcher=matcher, clock=ManualClock(T0.timestamp()))


def ev(etype: str, at: dt.timedelta | float = 0, email: str = "kim@example.com", kind: str = "lead",
       id: str | None = None, ids: dict[str, str] | None = None, **props: Any) -> Event:
    offset = at if isinstance(at, dt.timedelta) else dt.timedelta(hours=at)
    return Event(id=id or f"e{next(_ids)}", source="test", type=etype, occurred_at=T0 + offset,
                 subject={"kind": kind, "ids": ids or {"email": email}}, properties=props)


def days(n: float) -> dt.timedelta:
    return dt.timedelta(days=n)


def hours(n: float) -> dt.timedelta:
    return dt.timedelta(hours=n)


def fired(p: Pipeline, rule: str | None = None) -> list:
    return [d for d in p.store.all_decisions() if d.outcome == "fired" and (rule is None or d.rule == rule)]
