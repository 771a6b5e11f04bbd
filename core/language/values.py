"""The scalars written in a pack — durations, numbers, times of day, time zones — read where they stand, so a
bad one is reported at its own line with how to write it (docs/rule-language.md, Durations).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .context import ParseContext
from .durations import Duration, parse_duration


def read_duration(ctx: ParseContext, container: Any, key: Any, path: str) -> Duration | None:
    try:
        return parse_duration(container[key])
    except ValueError as exc:
        ctx.error(container, key, path, str(exc))
        return None


def as_number(value: Any) -> float | None:
    """Numbers, and strings such as "+30" or "-10"; never booleans."""

    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(" ", ""))
        except ValueError:
            return None
    return None


def read_number(ctx: ParseContext, container: Any, key: Any, path: str) -> float | None:
    number = as_number(container[key])
    if number is None:
        ctx.error(container, key, path, f"{container[key]!r} is not a number")
    return number


def read_time_of_day(ctx: ParseContext, container: Any, key: Any, path: str) -> dt.time | None:
    value = str(container[key])
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if not match or int(match.group(1)) > 24 or int(match.group(2)) > 59:
        ctx.error(container, key, path, f"{value!r} is not a time of day; write HH:MM, e.g. 09:00")
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    return dt.time(0, 0) if hour == 24 else dt.time(hour, minute)


def read_timezone(ctx: ParseContext, container: Any, key: Any, path: str) -> str | None:
    value = str(container[key])
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        ctx.error(container, key, path, f"{value!r} is not a time zone; write an IANA name such as Asia/Seoul")
        return None
    return value
