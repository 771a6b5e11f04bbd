"""Durations as admins write them: 30m, 24h, 7d, 2w, 3y, 1h30m, and 1bh (business hours)."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(bh|s|m|h|d|w|y)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:bh|s|m|h|d|w|y))+$")


class Duration(float):
    """Seconds, remembering how the admin wrote it (for messages) and whether it counts business hours."""

    text: str
    business_hours: float

    def __new__(cls, seconds: float, text: str = "", business_hours: float = 0.0) -> "Duration":
        obj = super().__new__(cls, seconds)
        obj.text = text or f"{seconds:g}s"
        obj.business_hours = business_hours
        return obj


def parse_duration(value: object) -> Duration:
    """Parse a duration or raise ValueError with a sentence that says how to write it."""

    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not a duration; write e.g. 30m, 24h or 7d")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{value!r} is negative; a duration is 0 or more")
        return Duration(float(value), f"{value:g}s")
    text = str(value).strip().replace(" ", "")
    if not _WHOLE.match(text):
        hint = _hint(str(value))
        raise ValueError(f"{str(value)!r} is not a duration; write {hint}")
    seconds = 0.0
    business = 0.0
    for number, unit in _PART.findall(text):
        if unit == "bh":
            business += float(number)
        else:
            seconds += float(number) * UNITS[unit]
    if business and seconds:
        raise ValueError(f"{value!r} mixes business hours with calendar time; write one or the other")
    return Duration(seconds if not business else business * 3600, text, business)


def _hint(text: str) -> str:
    words = {"second": "s", "minute": "m", "min": "m", "hour": "h", "day": "d", "week": "w", "year": "y",
             "초": "s", "분": "m", "시간": "h", "일": "d", "주": "w", "년": "y"}
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([^\d\s]+)\s*$", text)
    if match:
        number, word = match.groups()
        word_l = word.lower().rstrip("s") if word.isascii() else word
        for name, unit in words.items():
            if word_l == name or (word.isascii() and word_l.startswith(name)):
                return f"{number}{unit}"
    return "a number and a unit, e.g. 30m, 24h, 7d, 2w, 1y or 1bh"


def format_duration(seconds: float) -> str:
    for unit, size in (("y", UNITS["y"]), ("w", UNITS["w"]), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
