"""HubSpot webhook batches in, crmrules Events out.

The view verifies the v3 signature over the raw body, turns each notification into events, hands them to
`crmrules.api.ingest` (durable before we answer) and answers. It never calls HubSpot: HubSpot waits at most
five seconds for an answer and retries batches that time out, so all enrichment happens later, elsewhere.

A notification we cannot use (an object type we do not map, a malformed item) is counted and skipped, not
answered with an error: HubSpot would retry the whole batch, and the good notifications in it with it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from typing import Any, Callable, Iterable

from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError

from crmrules.api import MERGE, RECORD_UPDATE, EntityRef, Event, Rejected, ingest, plugin_context
from crmrules.config import secret

from . import properties, signature
from .settings import HubSpotSettings

log = logging.getLogger("crmrules_hubspot.webhooks")

SOURCE = "hubspot"
PATH = "/hooks/hubspot"
SECRET_ENV = "HUBSPOT_CLIENT_SECRET"

_OBJECTS = {"contact": "contacts", "company": "companies", "deal": "deals"}
_OBJECT_TYPE_IDS = {"0-1": "contacts", "0-2": "companies", "0-3": "deals"}  # generic `object.*` webhooks
_ASSOCIATION_SIDES = {"CONTACT": "contacts", "COMPANY": "companies", "DEAL": "deals"}

CREATED, DELETED, RESTORED = "created", "deleted", "restored"
ASSOCIATED, DISSOCIATED = "associated", "dissociated"
BEHAVIOURAL = "behavioralEvent"
"""Not a HubSpot subscription type: our own notification shape for behavioural events (see the README)."""


class Skip(Exception):
    """A notification we do not turn into events (`reason` is counted in the answer)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


OPENAPI: dict[str, Any] = {PATH: {"post": {
    "summary": "HubSpot webhook batch (v3 signature)",
    "operationId": "hubspot_webhook",
    "tags": ["hubspot"],
    "parameters": [
        {"name": signature.SIGNATURE_HEADER, "in": "header", "required": True, "schema": {"type": "string"},
         "description": "base64 HMAC-SHA256 of method + public URL + body + timestamp, keyed by the app's secret"},
        {"name": signature.TIMESTAMP_HEADER, "in": "header", "required": True, "schema": {"type": "string"},
         "description": "epoch milliseconds; older than max_age or beyond max_clock_skew ahead is refused"}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "array", "items": {"type": "object", "required": ["subscriptionType", "occurredAt"], "properties": {
            "subscriptionType": {"type": "string", "examples": ["contact.propertyChange"]},
            "eventId": {"type": "integer"}, "subscriptionId": {"type": "integer"},
            "portalId": {"type": "integer"}, "appId": {"type": "integer"},
            "occurredAt": {"type": "integer", "description": "epoch milliseconds"},
            "attemptNumber": {"type": "integer"}, "objectId": {"type": "integer"},
            "propertyName": {"type": "string"}, "propertyValue": {"type": ["string", "null"]},
            "changeSource": {"type": "string"}, "primaryObjectId": {"type": "integer"},
            "mergedObjectIds": {"type": "array", "items": {"type": "integer"}},
            "eventName": {"type": "string", "description": "behavioralEvent notifications (crmrules extension)"},
            "properties": {"type": "object"}}}}}}},
    "responses": {
        "200": {"description": "stored (or already stored)", "content": {"application/json": {"schema": {
            "type": "object", "properties": {
                "events": {"type": "integer"}, "new": {"type": "integer"}, "duplicates": {"type": "integer"},
                "skipped": {"type": "object", "additionalProperties": {"type": "integer"}}}}}}},
        "400": {"description": "signed, but not a JSON array of notifications"},
        "401": {"description": "missing, wrong or stale signature; nothing stored"},
        "413": {"description": "more notifications than max_batch"},
        "503": {"description": "HUBSPOT_CLIENT_SECRET is not configured"}}}}}


def blueprint() -> Blueprint:
    bp = Blueprint("hubspot", __name__)
    bp.add_url_rule(PATH, "receive", receive, methods=["POST"])
    return bp


def receive() -> Response:
    """HubSpot webhook batch: verify, map, ingest, answer (no HubSpot calls here)."""
    try:
        options: HubSpotSettings = plugin_context("hubspot").options
    except ValueError as exc:
        log.error("HubSpot webhooks refused until the settings are fixed:\n%s", exc)
        raise Rejected(503, "the HubSpot plugin's settings are invalid; the sidecar's log says which") from None
    body = request.get_data(cache=True)
    client_secret = secret(SECRET_ENV)
    if not client_secret:
        log.error("%s is not set: every HubSpot webhook is refused", SECRET_ENV)
        raise Rejected(503, f"{SECRET_ENV} is not configured")
    try:
        signature.verify(secret=client_secret, method=request.method, uri=signed_url(options), body=body,
                         signature=request.headers.get(signature.SIGNATURE_HEADER),
                         timestamp=request.headers.get(signature.TIMESTAMP_HEADER),
                         max_age=options.max_age, max_skew=options.max_clock_skew)
    except signature.SignatureError as exc:
        log.warning("HubSpot webhook from %s refused: %s", request.remote_addr, exc.reason)
        raise Rejected(401, exc.reason) from None
    try:
        batch = json.loads(body)
    except ValueError:
        raise Rejected(400, "body is not JSON") from None
    if not isinstance(batch, list):
        raise Rejected(400, "expected a JSON array of notifications")
    if len(batch) > options.max_batch:
        raise Rejected(413, f"{len(batch)} notifications in one request (limit {options.max_batch})")
    events, counts = to_events(batch, options)
    fresh = ingest(events) if events else []
    return jsonify({"events": len(events), "new": sum(1 for f in fresh if f),
                    "duplicates": sum(1 for f in fresh if not f), "skipped": dict(counts)})


def signed_url(options: HubSpotSettings) -> str:
    """The URL HubSpot signed: `public_url` (plus this request's query if it names none), else what we got."""

    if not options.public_url:
        return request.url
    query = request.query_string.decode("latin-1")
    if query and "?" not in options.public_url:
        return f"{options.public_url}?{query}"
    return options.public_url


# ---------------------------------------------------------------- notifications → events

def to_events(batch: Iterable[Any], options: HubSpotSettings) -> tuple[list[Event], Counter[str]]:
    """Every event the notifications of one batch stand for; `skipped` counts the rest by reason."""

    events: list[Event] = []
    skipped: Counter[str] = Counter()
    for item in batch:
        try:
            if not isinstance(item, dict):
                raise Skip("not an object")
            events.extend(notification_events(item, options))
        except Skip as exc:
            skipped[exc.reason] += 1
        except (KeyError, TypeError, ValueError, OverflowError, OSError, ValidationError) as exc:
            # OverflowError/OSError: an occurredAt beyond what a datetime holds (fromtimestamp)
            log.warning("malformed HubSpot notification skipped: %s", _short(exc))
            skipped["malformed"] += 1
    return events, skipped


def notification_events(n: dict[str, Any], options: HubSpotSettings) -> list[Event]:
    subscription = str(n["subscriptionType"])
    prefix, _, change = subscription.partition(".")
    object_type = (_OBJECT_TYPE_IDS.get(str(n.get("objectTypeId"))) if prefix == "object"
                   else _OBJECTS.get(prefix))
    if object_type is None:
        raise Skip(f"unmapped object type: {prefix}")
    portal = n.get("portalId")
    if options.portal_ids and portal not in options.portal_ids:
        raise Skip("portal not in portal_ids")
    occurred_ms = int(n["occurredAt"])
    occurred = dt.datetime.fromtimestamp(occurred_ms / 1000, dt.timezone.utc)
    kind = properties.ENTITY_KINDS[object_type]
    object_id = n.get("objectId")
    # HubSpot: "eventId ... is not guaranteed to be unique". These fields together are, and are the same on
    # every redelivery (attemptNumber is deliberately left out).
    base = f"hubspot:{portal}:{n.get('subscriptionId')}:{n.get('eventId')}:{object_id}:{occurred_ms}"

    def event(etype: str, ids: dict[str, Any], props: dict[str, Any] | None = None, suffix: str = "",
              related: list[EntityRef] | None = None, subject_kind: str | None = None) -> Event:
        subject = EntityRef(kind=subject_kind or kind,
                            ids={k: str(v) for k, v in ids.items() if v not in (None, "")})
        return Event(id=base + suffix, source=SOURCE, type=etype, occurred_at=occurred, subject=subject,
                     properties=props or {}, related=related or [])

    ids = {"hubspot_id": object_id}
    if change == "propertyChange":
        name = str(n["propertyName"])
        value = n.get("propertyValue")
        if name == "email" and object_type == "contacts" and value:
            ids["email"] = value
        extra = options.property_map.get(object_type)  # type: ignore[call-overload]
        return [event(RECORD_UPDATE, ids, properties.to_crmrules(object_type, {name: value}, extra),
                      suffix=f":{name}")]
    if change == "creation":
        return [event(RECORD_UPDATE, ids, {"created_at": occurred.isoformat()}, suffix=":update"),
                event(CREATED, ids, _origin(n), suffix=":created")]
    if change == "deletion":
        return [event(DELETED, ids, _origin(n))]
    if change == "privacyDeletion":
        return [event(DELETED, ids, {**_origin(n), "privacy": True})]
    if change == "restore":
        return [event(RESTORED, ids, _origin(n))]
    if change == "merge":
        return _merge_events(n, event)
    if change == "associationChange":
        return _association_events(n, event)
    if change == BEHAVIOURAL:
        return [_behavioural_event(n, ids, options, event)]
    raise Skip(f"unmapped change: {change}")


def _origin(n: dict[str, Any]) -> dict[str, Any]:
    return {"change_source": n["changeSource"]} if n.get("changeSource") else {}


def _merge_events(n: dict[str, Any], event: Callable[..., Event]) -> list[Event]:
    """One `merge` event per record that disappeared into the survivor (the core merges two at a time).

    The survivor is `newObjectId` when HubSpot made a new record out of the merge, else `primaryObjectId`.
    """

    survivor = n.get("newObjectId") or n.get("primaryObjectId") or n["objectId"]
    merged = [n.get("primaryObjectId"), *(n.get("mergedObjectIds") or [])]
    others = list(dict.fromkeys(str(m) for m in merged if m not in (None, "") and str(m) != str(survivor)))
    if not others:
        raise Skip("merge without merged records")
    return [event(MERGE, {"hubspot_id": survivor}, {"merged_ids": {"hubspot_id": other}}, suffix=f":merge:{other}")
            for other in others]


def _association_events(n: dict[str, Any], event: Callable[..., Event]) -> list[Event]:
    """`CONTACT_TO_COMPANY` added → an `associated` event linking the lead to the account (rules then see
    `account:` properties); removal → `dissociated` (the core has no way to unlink yet)."""

    kind_from, _, kind_to = str(n["associationType"]).partition("_TO_")
    from_type, to_type = _ASSOCIATION_SIDES.get(kind_from), _ASSOCIATION_SIDES.get(kind_to)
    if from_type is None or to_type is None:
        raise Skip(f"unmapped association: {n['associationType']}")
    from_id, to_id = n["fromObjectId"], n["toObjectId"]
    props = {"association": n["associationType"], "to_hubspot_id": str(to_id)}
    suffix = f":assoc:{from_id}:{to_id}"
    ids = {"hubspot_id": from_id}
    kind = properties.ENTITY_KINDS[from_type]
    if n.get("associationRemoved"):
        return [event(DISSOCIATED, ids, props, suffix, subject_kind=kind)]
    related = [EntityRef(kind=properties.ENTITY_KINDS[to_type], ids={"hubspot_id": str(to_id)})]
    return [event(ASSOCIATED, ids, props, suffix, related, subject_kind=kind)]


def _behavioural_event(n: dict[str, Any], ids: dict[str, Any], options: HubSpotSettings,
                      event: Callable[..., Event]) -> Event:
    name = str(n["eventName"]).strip()
    etype = options.event_names.get(name, name)
    if not etype or any(ch.isspace() for ch in etype):
        raise Skip("behavioural event name with spaces (map it in event_names)")
    props = n.get("properties") or {}
    if not isinstance(props, dict):
        raise ValueError("properties must be an object")
    if n.get("email"):
        ids = {**ids, "email": n["email"]}
    return event(etype, ids, dict(props), suffix=f":{name}")


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
