"""HubSpot property names ↔ the names crmrules rules use, in one table (the README shows the same table).

Rules are written against crmrules names (`first_name`, `unsubscribed`, `timezone`, ...) so that one pack runs
beside HubSpot or Salesforce alike; the core's guards read some of them (consent reads `unsubscribed`, quiet
hours read `timezone`, templates read `locale`). A HubSpot property missing from the table keeps its own name,
so `lead: {hs_lead_status: ...}` still works. Values stay HubSpot's strings (the engine coerces text to the type
a rule compares with), except where a guard needs a typed value.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable
from zoneinfo import available_timezones

OBJECT_TYPES = {"lead": "contacts", "account": "companies", "deal": "deals"}
"""crmrules entity kind → HubSpot object type."""

ENTITY_KINDS = {v: k for k, v in OBJECT_TYPES.items()}

MODIFIED_PROPERTY = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate", "deals": "hs_lastmodifieddate"}
"""HubSpot's last-modified property differs between contacts and every other object."""


def _bool(value: Any) -> Any:
    text = str(value).strip().lower()
    return True if text == "true" else False if text == "false" else value


@functools.lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    return {z.lower(): z for z in available_timezones()}


def _timezone(value: Any) -> Any:
    """HubSpot stores `hs_timezone` as e.g. `asia_slash_seoul`; quiet hours need the IANA name `Asia/Seoul`."""

    text = str(value or "").strip()
    if not text:
        return value
    return _zones().get(text.replace("_slash_", "/").lower(), text)


@dataclass(frozen=True)
class Field:
    hubspot: str
    crmrules: str
    convert: Callable[[Any], Any] | None = None
    writable: bool = True  # False: HubSpot computes it or another API owns it; `set` must not write it


_COMMON = (
    Field("createdate", "created_at", writable=False),
    Field("hubspot_owner_id", "owner_id"),
)

FIELDS: dict[str, tuple[Field, ...]] = {
    "contacts": _COMMON + (
        Field("email", "email"),
        Field("firstname", "first_name"),
        Field("lastname", "last_name"),
        Field("phone", "phone"),
        Field("mobilephone", "mobile_phone"),
        Field("company", "company"),
        Field("jobtitle", "job_title"),
        Field("lifecyclestage", "lifecycle_stage"),
        Field("hs_lead_status", "lead_status"),
        Field("hs_language", "locale"),
        Field("hs_timezone", "timezone", _timezone),
        Field("country", "country"),
        Field("city", "city"),
        # Opt-out of all email is changed through the subscriptions API, not by writing the property.
        Field("hs_email_optout", "unsubscribed", _bool, writable=False),
        Field("lastmodifieddate", "updated_at", writable=False),
    ),
    "companies": _COMMON + (
        Field("name", "name"),
        Field("domain", "domain"),
        Field("industry", "industry"),
        Field("numberofemployees", "employees"),
        Field("annualrevenue", "annual_revenue"),
        Field("country", "country"),
        Field("lifecyclestage", "lifecycle_stage"),
        Field("hs_lastmodifieddate", "updated_at", writable=False),
    ),
    "deals": _COMMON + (
        Field("dealname", "name"),
        Field("dealstage", "stage"),
        Field("pipeline", "pipeline"),
        Field("amount", "amount"),
        Field("closedate", "close_date"),
        Field("hs_lastmodifieddate", "updated_at", writable=False),
    ),
}

SYSTEM_PROPERTIES = frozenset({"hs_object_id"})
"""Returned by every read; the id already names the entity, so it is not copied into properties."""


def to_crmrules(object_type: str, props: dict[str, Any], extra: dict[str, str] | None = None) -> dict[str, Any]:
    """HubSpot property values → crmrules property values (names mapped, a few values typed)."""

    table = {f.hubspot: f for f in FIELDS.get(object_type, ())}
    out: dict[str, Any] = {}
    for name, value in props.items():
        if name in SYSTEM_PROPERTIES:
            continue
        if extra and name in extra:
            out[extra[name]] = value
            continue
        field = table.get(name)
        if field is None:
            out[name] = value
        else:
            out[field.crmrules] = field.convert(value) if field.convert and value not in (None, "") else value
    return out


def to_hubspot(object_type: str, props: dict[str, Any], extra: dict[str, str] | None = None) -> dict[str, str]:
    """crmrules property values (a rule's `set:`) → the HubSpot names and string values a PATCH takes.

    Raises ValueError naming a property HubSpot does not let us write this way.
    """

    reverse = {f.crmrules: f for f in FIELDS.get(object_type, ())}
    reverse_extra = {v: k for k, v in (extra or {}).items()}
    out: dict[str, str] = {}
    for name, value in props.items():
        if name in reverse_extra:
            target = reverse_extra[name]
        elif name in reverse:
            field = reverse[name]
            if not field.writable:
                raise ValueError(f"{name} ({field.hubspot} in HubSpot) is not writable through a property update")
            target = field.hubspot
        else:
            target = name
        out[target] = hubspot_value(value)
    return out


def hubspot_value(value: Any) -> str:
    """HubSpot takes every property value as a string; an empty string clears the property."""

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple, set)):
        return ";".join(hubspot_value(v) for v in value)
    return str(value)


def default_poll_properties(object_type: str, extra: dict[str, str] | None = None) -> list[str]:
    names = [f.hubspot for f in FIELDS.get(object_type, ())] + list(extra or {})
    return sorted(set(names) | {MODIFIED_PROPERTY[object_type]})
