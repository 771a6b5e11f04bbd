"""`calendar:` — the pack's business days and hours, which `bh` durations and SLAs count in
(docs/rule-language.md, A pack).
"""

from __future__ import annotations

import datetime as dt
import re

from . import ast
from .context import ParseContext, report_unknown_keys
from .values import read_time_of_day, read_timezone
from .yamlmarks import MarkedDict

WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


def read_calendar(ctx: ParseContext, cal: MarkedDict) -> ast.Calendar:
    report_unknown_keys(ctx, cal, {"timezone", "days", "hours"}, "calendar")
    tz = read_timezone(ctx, cal, "timezone", "calendar.timezone") if "timezone" in cal else "UTC"
    days = tuple(range(5))
    if "days" in cal:
        raw = cal["days"] if isinstance(cal["days"], list) else [cal["days"]]
        try:
            days = tuple(sorted(WEEKDAYS[str(d).lower()[:3]] for d in raw))
        except KeyError:
            ctx.error(cal, "days", "calendar.days", "days are mon, tue, wed, thu, fri, sat, sun")
    start, end = dt.time(9), dt.time(18)
    if "hours" in cal:
        match = re.fullmatch(r"\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*", str(cal["hours"]))
        if not match:
            ctx.error(cal, "hours", "calendar.hours", "write hours as `09:00-18:00`")
        else:
            holder = {"a": match.group(1), "b": match.group(2)}
            start = read_time_of_day(ctx, holder, "a", "calendar.hours") or start
            end = read_time_of_day(ctx, holder, "b", "calendar.hours") or end
    return ast.Calendar(tz or "UTC", days, start, end)
