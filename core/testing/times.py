"""Times in a test file: `at: +1d`, `+1d09:00` (a day later, at 09:00 on the case's clock) or an ISO time with
a zone; and times shown back in the case's own zone, with the zone, so an admin compares like with like."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ..language.durations import parse_duration
from ..times import show as show_time

DEFAULT_START = "2026-01-05T09:00:00+09:00"  # a Monday, 09:00 in Seoul

_RELATIVE = re.compile(r"([+-])\s*(.*?)\s*(?:(\d{1,2}):(\d{2}))?")
HOW = 'write +1d, +2h30m, +1d09:00 (a day later at 09:00) or an ISO time with a zone, e.g. 2026-01-06T09:00:00+09:00'


def when(base: dt.datetime, value: Any) -> dt.datetime:
    """`value` as a time: an offset from `base` (optionally to a clock time that day), or an ISO time.

    Raises ValueError with a sentence that says how to write it."""

    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{value!r} is not a time; {HOW}")
    text = str(value).strip()
    relative = _RELATIVE.fullmatch(text)
    if relative and text[:1] in "+-":
        sign, amount, hour, minute = relative.groups()
        if not amount and hour is None:
            raise ValueError(f"{text!r} is not a time; {HOW}")
        try:
            seconds = float(parse_duration(amount)) if amount else 0.0
        except ValueError:
            raise ValueError(f"{text!r} is not a time: {amount!r} is not a duration; {HOW}") from None
        try:
            moved = base + dt.timedelta(seconds=seconds if sign == "+" else -seconds)
        except OverflowError:
            raise ValueError(f"{text!r} is further from the start than a calendar goes") from None
        if hour is None:
            return moved
        if int(hour) > 23 or int(minute) > 59:
            raise ValueError(f"{text!r}: {hour}:{minute} is not a time of day")
        return moved.replace(hour=int(hour), minute=int(minute), second=0, microsecond=0)
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time; {HOW}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; write e.g. {text}+09:00")
    return parsed


def show(ts: float, zone: dt.tzinfo | None) -> str:
    """`2026-01-06 08:00 KST` (or `+09:00` for a zone that is only an offset): as every printed time is shown
    (core/times.py)."""

    return show_time(ts, zone)


def iso(ts: float, zone: dt.tzinfo | None) -> str:
    return dt.datetime.fromtimestamp(ts, zone or dt.timezone.utc).isoformat()
