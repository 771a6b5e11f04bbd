"""Polling: records of Lead, Contact, Account and Opportunity changed since a cursor, oldest first, by SOQL.

The cursor is a keyset position per sObject, `(LastModifiedDate, Id)` of the last record handed out, so a
page boundary that falls inside a burst of records sharing one timestamp loses nothing and repeats nothing:

    SELECT ... FROM Lead WHERE LastModifiedDate > T OR (LastModifiedDate = T AND Id > 'last id')
    ORDER BY LastModifiedDate, Id LIMIT n

Each record version becomes one event with the id `<Id>@<LastModifiedDate>`, so a poll that overlaps a
previous one (a cursor restored from a backup, a manual `since`) is deduplicated by the inbox.
"""

from __future__ import annotations

import datetime as dt
import json
import requests
from simple_salesforce.format import format_soql

from crmrules.api import Event, PullResult

from .client import Api
from .records import parse_time, record_events
from .settings import SalesforceSettings

Position = tuple[str, str]  # (LastModifiedDate as Salesforce wrote it, Id)


def soql_datetime(moment: dt.datetime) -> str:
    """A SOQL dateTime literal (unquoted), in UTC; milliseconds only when there are some."""

    moment = moment.astimezone(dt.timezone.utc)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def read_cursor(since: str | None, objects: list[str]) -> dict[str, Position | None]:
    """Positions from our own cursor (JSON), or one ISO time for every sObject (`crmrules pull --since ...`)."""

    if not since:
        return {o: None for o in objects}
    text = since.strip()
    if text.startswith("{"):
        data = json.loads(text)
        return {o: ((str(data[o][0]), str(data[o][1])) if data.get(o) else None) for o in objects}
    moment = parse_time(text)
    if moment is None:
        raise ValueError(f"cannot read the Salesforce cursor {since!r}: expected our JSON cursor or an ISO time "
                         "with a zone")
    return {o: (soql_datetime(moment), "") for o in objects}


def write_cursor(positions: dict[str, Position | None]) -> str:
    return json.dumps({o: list(p) for o, p in positions.items() if p}, sort_keys=True, separators=(",", ":"))


def query_for(sobject: str, fields: list[str], position: Position | None, limit: int) -> str:
    select = ", ".join(fields)
    if position is None:
        return format_soql("SELECT {:literal} FROM {:literal} ORDER BY LastModifiedDate, Id LIMIT {:literal}",
                           select, sobject, str(limit))
    moment = parse_time(position[0])
    literal = soql_datetime(moment) if moment else position[0]
    where = format_soql("LastModifiedDate > {:literal} OR (LastModifiedDate = {:literal} AND Id > {})",
                        literal, literal, position[1])
    return format_soql("SELECT {:literal} FROM {:literal} WHERE {:literal} ORDER BY LastModifiedDate, Id "
                       "LIMIT {:literal}", select, sobject, where, str(limit))


def pull(since: str | None, options: SalesforceSettings, session: requests.Session | None = None) -> PullResult:
    api = Api(options, session)
    positions = read_cursor(since, options.pull_objects)
    now = dt.datetime.now(dt.timezone.utc)
    events: list[Event] = []
    more = False
    for sobject in options.pull_objects:
        soql = query_for(sobject, options.fields_to_pull(sobject), positions[sobject], options.pull_batch_size)
        rows = api.run(lambda sf: sf.query_all(soql)).get("records", [])
        for row in rows:
            stamp = str(row.get("LastModifiedDate") or "")
            events += record_events(sobject, row, event_id=f"{row['Id']}@{stamp}", options=options,
                                    received_at=now)
            positions[sobject] = (stamp, str(row["Id"]))
        more = more or len(rows) >= options.pull_batch_size
    events.sort(key=lambda e: e.occurred_at)
    return PullResult(events=events, cursor=write_cursor(positions), more=more)


def pull_all(options: SalesforceSettings, since: str | None = None,
             session: requests.Session | None = None) -> tuple[list[Event], str]:
    """Every change since `since`, following `more` (for backfills and tests)."""

    events: list[Event] = []
    while True:
        result = pull(since, options, session)
        events += result.events
        since = result.cursor
        if not result.more:
            return events, since or ""


__all__ = ["pull", "pull_all", "query_for", "read_cursor", "soql_datetime", "write_cursor"]
