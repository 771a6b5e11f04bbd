"""Times as the command line shows and reads them: one display zone for every printed time, with the zone shown.

The display zone is the deployment's `timezone` setting; without one, the zone the packs themselves name (their
quiet hours and calendars: Asia/Seoul for the shipped packs) when they name exactly one, else UTC. Text output
writes `2026-03-02 09:00 KST`, JSON output ISO 8601 with the offset (`2026-03-02T09:00:00+09:00`).

`moment()` reads what `crmrules run --until` takes: an ISO time with a zone, a date, `now`, `today`,
`tomorrow`, or an offset such as `+3d` — dates and offsets in the display zone unless a zone is written.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .language.durations import parse_duration

UTC = ZoneInfo("UTC")


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValueError with a sentence when there is none."""

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone; write an IANA name such as Asia/Seoul or UTC") from None


def pack_zone(packs: Iterable[Any]) -> str | None:
    """The one zone the packs name in quiet hours and calendars (UTC, a calendar's default, does not count)."""

    named: set[str] = set()
    for pack in packs:
        quiet = getattr(getattr(pack, "messages", None), "quiet_hours", None)
        if quiet is not None:
            named.add(quiet.timezone)
        calendar = getattr(pack, "calendar", None)
        if calendar is not None:
            named.add(calendar.timezone)
    named.discard("UTC")
    return named.pop() if len(named) == 1 else None


def display_zone(setting: str | None, packs: Iterable[Any] = ()) -> ZoneInfo:
    """The zone every printed time is shown in: the setting, else the packs' own zone, else UTC."""

    if setting:
        return zone_named(setting)
    return zone_named(pack_zone(packs) or "UTC")


def zone_label(moment: dt.datetime) -> str:
    """`KST`, `UTC`, or `+05:30` where the zone has no letters of its own."""

    name = moment.tzname() or ""
    if re.fullmatch(r"[A-Za-z]{2,6}", name):
        return name
    offset = moment.strftime("%z")
    return f"{offset[:3]}:{offset[3:]}" if offset else "UTC"


def show(ts: float | None, zone: dt.tzinfo | None, seconds: bool = False) -> str:
    """`2026-03-02 09:00 KST`: minutes (seconds when asked, or when they are not :00), and always the zone."""

    if ts is None:
        return "-"
    try:
        moment = dt.datetime.fromtimestamp(ts, zone or UTC)
    except (OverflowError, OSError, ValueError):
        return f"{ts:.0f} (epoch seconds)"
    clock = "%Y-%m-%d %H:%M:%S" if seconds or moment.second or moment.microsecond else "%Y-%m-%d %H:%M"
    return f"{moment.strftime(clock)} {zone_label(moment)}"


def iso(ts: float | None, zone: dt.tzinfo | None) -> str | None:
    """ISO 8601 with the offset, in `zone`, for JSON output."""

    if ts is None:
        return None
    try:
        return dt.datetime.fromtimestamp(ts, zone or UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


_ISO_IN_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")


def localise(text: str, zone: dt.tzinfo | None) -> str:
    """ISO times inside a sentence (a decision's reason: `last fired 2026-03-02T00:00:00+00:00`) shown in `zone`."""

    def one(match: re.Match[str]) -> str:
        try:
            moment = dt.datetime.fromisoformat(match.group(0).replace("Z", "+00:00"))
        except ValueError:
            return match.group(0)
        return show(moment.timestamp(), zone)

    return _ISO_IN_TEXT.sub(one, text)


HOW = ("write an ISO time with a zone (2026-03-05T18:00:00+09:00), a date (2026-03-05, midnight in the display "
       "zone), now, today, tomorrow, or an offset such as +3d, +12h (for a replay: after its last event); add a zone name to any of them "
       "(2026-03-05 Asia/Seoul, tomorrow UTC)")


def moment(text: str, zone: dt.tzinfo, now: float, offsets_from: float | None = None) -> float:
    """What `--until` means, as epoch seconds; ValueError with a sentence saying how to write it.

    `now`, `today` and `tomorrow` are wall-clock; an offset (`+3d`) counts from `offsets_from` when given (a
    replay passes its last event's time: "three days after the file ends"), else from now."""

    raw = text.strip()
    parts = raw.rsplit(" ", 1)
    if len(parts) == 2 and "/" in parts[1] or len(parts) == 2 and parts[1].upper() == "UTC":
        raw, zone = parts[0].strip(), zone_named("UTC" if parts[1].upper() == "UTC" else parts[1])
    if not raw:
        raise ValueError(f"{text!r} is not a time; {HOW}")
    word = raw.lower()
    today = dt.datetime.fromtimestamp(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    if word == "now":
        return now
    if word in ("today", "tomorrow"):
        day = today + dt.timedelta(days=1 if word == "tomorrow" else 0)
        return day.timestamp()
    if raw[0] in "+-":
        try:
            seconds = float(parse_duration(raw[1:].strip()))
        except ValueError:
            raise ValueError(f"{text!r}: {raw[1:]!r} is not a duration; {HOW}") from None
        base = now if offsets_from is None else offsets_from
        return base + (seconds if raw[0] == "+" else -seconds)
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time; {HOW}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{text!r} is further than a calendar goes") from None
