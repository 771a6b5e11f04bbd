"""Backfill and polling: records modified since a cursor, as `record_update` events.

For accounts that cannot reach us by webhook, and to catch up after downtime longer than HubSpot's retries.
The CRM search API filters on the last-modified property (`lastmodifieddate` for contacts,
`hs_lastmodifieddate` for the rest) and sorts ascending, 100 a page.

Two choices worth knowing:
- We filter with GTE from `cursor - poll_overlap`, not GT from the cursor. Search lags writes by seconds, so a
  record modified just before the cursor can appear after it was passed; and several records can share the
  cursor's millisecond. Re-read records produce the same event id (object, id, modification time), so the inbox
  drops them: the overlap costs a few reads, never a duplicate evaluation.
- The cursor is per object type (a compact JSON object), because contacts and deals advance separately; a
  plain ISO time or epoch milliseconds is accepted as `since` for a first backfill ("from this date").
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from crmrules.api import RECORD_UPDATE, EntityRef, Event, PullResult

from . import properties
from .client import Client
from .settings import HubSpotSettings
from .webhooks import SOURCE


def parse_cursor(since: str | None, object_types: list[str]) -> dict[str, int]:
    """Cursor → {object type: epoch ms}; a bare time applies to every object type."""

    if not since:
        return {t: 0 for t in object_types}
    text = since.strip()
    if text.startswith("{"):
        data = json.loads(text)
        return {t: int(data.get(t, 0)) for t in object_types}
    if text.lstrip("-").isdigit():
        return {t: int(text) for t in object_types}
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"since {since!r} needs a time zone (e.g. 2026-01-01T00:00:00Z)")
    return {t: int(moment.timestamp() * 1000) for t in object_types}


def _millis(value: Any) -> int | None:
    text = str(value or "").strip()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    try:
        return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def pull(since: str | None, options: HubSpotSettings, client: Client) -> PullResult:
    cursors = parse_cursor(since, list(options.poll_objects))
    events: list[Event] = []
    more = False
    for object_type in options.poll_objects:
        found, cursors[object_type], truncated = _pull_type(object_type, cursors[object_type], options, client)
        events.extend(found)
        more = more or truncated
    events.sort(key=lambda e: e.occurred_at)
    return PullResult(events=events, cursor=json.dumps(cursors, separators=(",", ":"), sort_keys=True), more=more)


def _pull_type(object_type: str, cursor: int, options: HubSpotSettings,
               client: Client) -> tuple[list[Event], int, bool]:
    modified = properties.MODIFIED_PROPERTY[object_type]
    extra = options.property_map.get(object_type)  # type: ignore[call-overload]
    names = options.poll_properties.get(object_type) or properties.default_poll_properties(object_type, extra)  # type: ignore[call-overload]
    if modified not in names:
        names = [*names, modified]
    start = max(0, cursor - int(options.poll_overlap * 1000))
    events: list[Event] = []
    latest = cursor
    after: str | None = None
    while True:
        records, after = client.search(object_type, [(modified, "GTE", str(start))], names=names,
                                       sort=(modified, "ASCENDING"), limit=options.poll_page_size, after=after)
        for record in records:
            event = record_event(object_type, record, extra)
            if event is None:
                continue
            events.append(event)
            latest = max(latest, int(event.ts() * 1000))
        if after is None:
            return events, latest, False
        if len(events) >= options.poll_max_records:
            return events, latest, True


def record_event(object_type: str, record: Any, extra: dict[str, str] | None = None) -> Event | None:
    # A property HubSpot has no value for is left out: an empty CRM field must not clear what crmrules learnt
    # elsewhere (a webhook's propertyChange to empty does clear it).
    props = {k: v for k, v in (record.properties or {}).items() if v not in (None, "")}
    modified_ms = _millis(props.get(properties.MODIFIED_PROPERTY[object_type]))
    if modified_ms is None and getattr(record, "updated_at", None) is not None:
        modified_ms = int(record.updated_at.timestamp() * 1000)
    if modified_ms is None:
        return None
    ids = {"hubspot_id": str(record.id)}
    if object_type == "contacts" and props.get("email"):
        ids["email"] = str(props["email"])
    return Event(id=f"hubspot:{object_type}:{record.id}:{modified_ms}", source=SOURCE, type=RECORD_UPDATE,
                 occurred_at=dt.datetime.fromtimestamp(modified_ms / 1000, dt.timezone.utc),
                 subject=EntityRef(kind=properties.ENTITY_KINDS[object_type], ids=ids),
                 properties=properties.to_crmrules(object_type, props, extra))
