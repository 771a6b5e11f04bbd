"""Salesforce records → crmrules events: one mapping shared by Outbound Messages, Flow callouts and polling.

Lead and Contact are both a crmrules `lead` (a person), Account an `account`, Opportunity a `deal`. Every
record is known by `salesforce_id` (its 18-character Id) and, for people, by email. A converted Lead also
yields a `merge` event, so the Lead and the Contact it became are one crmrules lead with one history.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

from crmrules.api import MERGE, RECORD_UPDATE, EntityRef, Event

from .settings import SalesforceSettings

SOURCE = "salesforce"
KEY_PREFIXES = {"00Q": "Lead", "003": "Contact", "001": "Account", "006": "Opportunity"}
KINDS = {"Lead": "lead", "Contact": "lead", "Account": "account", "Opportunity": "deal"}
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def to18(record_id: str) -> str:
    """The case-safe 18-character form of a Salesforce id (15-character ids differ only by letter case).

    Flows and formulas may hand out 15-character ids; identities must use one spelling or a person splits in two.
    """

    record_id = record_id.strip()
    if len(record_id) != 15 or not record_id.isalnum():
        return record_id
    suffix = ""
    for chunk in range(3):
        bits = sum(1 << i for i, ch in enumerate(record_id[chunk * 5:chunk * 5 + 5]) if "A" <= ch <= "Z")
        suffix += _CHECKSUM[bits]
    return record_id + suffix


def sobject_of(record_id: str | None) -> str | None:
    """Lead, Contact, Account or Opportunity from an id's key prefix (the first three characters)."""

    return KEY_PREFIXES.get((record_id or "")[:3])


def parse_time(value: Any) -> dt.datetime | None:
    """Salesforce dateTimes: `...000Z` (SOAP), `...000+0000` (REST), ISO with offset, or epoch milliseconds."""

    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(float(value) / 1000, dt.timezone.utc)
        except (OverflowError, OSError, ValueError):  # beyond what a datetime holds: not a time
            return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() == "true"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def properties(sobject: str, fields: Mapping[str, Any], options: SalesforceSettings) -> dict[str, Any]:
    """The record's fields under their API names, plus the crmrules names of mapped fields.

    Relationship sub-records (`Owner: {...}`) and `attributes` are left out: rules test flat values.
    """

    props: dict[str, Any] = {k: v for k, v in fields.items() if k != "attributes" and _scalar(v)}
    by_field = {f.lower(): prop for prop, f in options.field_map(sobject).items()}
    for name, value in list(props.items()):
        alias = by_field.get(name.lower())
        if alias is not None and alias not in props:
            props[alias] = value
    props["salesforce_object"] = sobject
    return props


def _ref(sobject: str, record_id: str, fields: Mapping[str, Any]) -> EntityRef:
    ids = {"salesforce_id": to18(record_id)}
    email = fields.get("Email")
    if KINDS[sobject] == "lead" and isinstance(email, str) and "@" in email:
        ids["email"] = email.strip()
    return EntityRef(kind=KINDS[sobject], ids=ids)


def _related(sobject: str, fields: Mapping[str, Any]) -> list[EntityRef]:
    """The account a Contact or Opportunity belongs to (or a converted Lead became), so rules can reach it."""

    field = {"Contact": "AccountId", "Opportunity": "AccountId"}.get(sobject)
    if sobject == "Lead" and truthy(fields.get("IsConverted")):
        field = "ConvertedAccountId"
    value = fields.get(field) if field else None
    if isinstance(value, str) and sobject_of(value) == "Account":
        return [EntityRef(kind="account", ids={"salesforce_id": to18(value)})]
    return []


def record_events(sobject: str, fields: Mapping[str, Any], *, event_id: str, options: SalesforceSettings,
                  received_at: dt.datetime, event_type: str = RECORD_UPDATE,
                  occurred_at: dt.datetime | None = None,
                  extra: Mapping[str, Any] | None = None) -> list[Event]:
    """The events one record yields: its update (or `event_type`), and a merge if it is a converted Lead.

    `occurred_at` defaults to the record's LastModifiedDate, else the time it was received. For `record_update`
    the properties are the record's fields; for other event types they are `extra` when given, else the fields.
    """

    if sobject not in KINDS:
        raise ValueError(f"unsupported sObject type {sobject!r}; expected one of {', '.join(KINDS)}")
    record_id = fields.get("Id")
    if not isinstance(record_id, str) or not record_id.strip():
        raise ValueError(f"the {sobject} record has no Id")
    when = occurred_at or parse_time(fields.get("LastModifiedDate")) or received_at
    props = properties(sobject, fields, options)
    if event_type != RECORD_UPDATE and extra is not None:
        props = dict(extra)
    subject = _ref(sobject, record_id, fields)
    events = [Event(id=event_id, source=SOURCE, type=event_type, occurred_at=when, subject=subject,
                    related=_related(sobject, fields), properties=props)]
    merge = conversion(sobject, fields, when)
    if merge is not None:
        events.append(merge)
    return events


def conversion(sobject: str, fields: Mapping[str, Any], when: dt.datetime) -> Event | None:
    """For a converted Lead: "the Contact it became is the same person" as a `merge` event.

    The Contact is the subject (it is the record that lives on in Salesforce, so pushes go there); the Lead's
    ids are `merged_ids`. The id names both records, so the same conversion seen by an Outbound Message and by
    a poll is accepted once.
    """

    contact = fields.get("ConvertedContactId")
    if sobject != "Lead" or not truthy(fields.get("IsConverted")) or not isinstance(contact, str) or not contact:
        return None
    lead_id, contact_id = to18(str(fields["Id"])), to18(contact)
    return Event(id=f"converted:{lead_id}:{contact_id}", source=SOURCE, type=MERGE, occurred_at=when,
                 subject=EntityRef(kind="lead", ids={"salesforce_id": contact_id}),
                 properties={"merged_ids": {"salesforce_id": lead_id}, "converted_from": lead_id})
