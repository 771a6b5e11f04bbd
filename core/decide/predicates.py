"""Plain-Python tests of one value: what history filters, `contains`/`matches`/date slots and `explain` use.

Where no snapshot exists (an event row of the history, a record field `explain` reports on), the host tests
values itself, with the same coercion as the compiled conditions (`compiler.coerce`), so a filter in history
and the same comparison in durable-rules agree.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ..language import ast
from .compiler import coerce


def filter_matches(flt: ast.EventFilter, props: dict[str, Any]) -> bool:
    return all(check_passes(check, props.get(check.name)) for check in flt.where)


def check_passes(check: ast.Check, value: Any, now: float | None = None) -> bool:
    """Plain-Python test of one property; used for history filters, where no snapshot exists."""

    return all(test_passes(t, value, now) for t in check.tests)


def test_passes(test: ast.Test, value: Any, now: float | None = None) -> bool:
    op = test.op
    if op == "missing":
        return value is None or value == ""
    if op == "exists":
        return not (value is None or value == "")
    if op == "contains":
        return contains(value, test.value)
    if op == "func":  # a plugin's condition function; its failure reads as "condition not met"
        _name, function, argument = test.value
        try:
            return bool(function(value, argument))
        except Exception:
            return False
    if op == "matches":
        return value is not None and re.search(test.value, str(value)) is not None
    if op in ("within_next", "within_last", "older_than", "past", "future"):
        delta = date_delta(value, now or 0.0)
        if delta is None:
            return False
        seconds = float(test.value or 0)
        return {"within_next": 0 <= delta <= seconds, "within_last": -seconds <= delta <= 0,
                "older_than": delta <= -seconds, "past": delta < 0, "future": delta > 0}[op]
    if op in ("in", "not_in"):
        found = any(_equal(value, v) for v in test.value)
        return found if op == "in" else not found
    if op == "eq":
        return _equal(value, test.value)
    if op == "neq":
        return not _equal(value, test.value)
    number = coerce(value, "num")
    if number is None:
        return False
    passed: bool = {"ge": number >= test.value, "gt": number > test.value, "le": number <= test.value,
                    "lt": number < test.value}[op]
    return passed


def _equal(value: Any, expected: Any) -> bool:
    kind = "bool" if isinstance(expected, bool) else "num" if isinstance(expected, (int, float)) else "str"
    got = coerce(value, kind)
    want = coerce(expected, kind)
    return got is not None and got == want


def contains(value: Any, needle: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, (list, tuple, set)):
        return any(_equal(v, needle) for v in value)
    if isinstance(value, str):
        # HubSpot multi-select values come as "a;b;c": a whole item matches, and so does a substring.
        return str(needle) in value.split(";") or str(needle) in value
    return False


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(value: Any) -> float | None:
    """A CRM date or datetime → epoch seconds; epoch milliseconds (HubSpot) are recognised by size."""

    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value / 1000.0 if value > 10**11 else float(value)
    text = str(value).strip()
    if text.isdigit():
        return parse_time(int(text))
    try:
        if _DATE_ONLY.match(text):
            return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def date_delta(value: Any, now: float) -> float | None:
    when = parse_time(value)
    return None if when is None else when - now
