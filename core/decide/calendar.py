"""Calendar arithmetic on event time: business hours for SLAs, quiet hours for messages."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from ..language import ast


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def add_duration(start: float, duration: Any, calendar: ast.Calendar) -> float:
    """start + duration; `bh` durations count only the calendar's business hours."""

    hours = float(getattr(duration, "business_hours", 0) or 0)
    if not hours:
        return start + float(duration)
    tz = zone(calendar.timezone)
    remaining = hours * 3600.0
    cursor = dt.datetime.fromtimestamp(start, tz)
    for _ in range(3660):  # at most ten years of days: a calendar with no open day cannot loop forever
        day_open = cursor.replace(hour=calendar.start.hour, minute=calendar.start.minute, second=0, microsecond=0)
        day_close = cursor.replace(hour=calendar.end.hour, minute=calendar.end.minute, second=0, microsecond=0)
        if cursor.weekday() in calendar.days and cursor < day_close:
            begin = max(cursor, day_open)
            available = (day_close - begin).total_seconds()
            if available >= remaining:
                return (begin + dt.timedelta(seconds=remaining)).timestamp()
            remaining -= available
        cursor = (cursor + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    raise ValueError("the business calendar has no open hours")


def quiet_until(ts: float, quiet: ast.QuietHours, timezone: str | None = None) -> float | None:
    """If `ts` falls in quiet hours (in the recipient's zone when known), the moment they end; else None."""

    try:
        tz = zone(timezone or quiet.timezone)
    except Exception:  # an unknown zone in a CRM field: fall back to the pack's
        tz = zone(quiet.timezone)
    local = dt.datetime.fromtimestamp(ts, tz)
    t = local.time()
    start, end = quiet.start, quiet.end
    overnight = start > end
    inside = (t >= start or t < end) if overnight else (start <= t < end)
    if not inside:
        return None
    end_day = local.date()
    if overnight and t >= start:
        end_day = end_day + dt.timedelta(days=1)
    ends = dt.datetime.combine(end_day, end, tzinfo=tz)
    return ends.timestamp()
