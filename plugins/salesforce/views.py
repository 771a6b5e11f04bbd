"""The receiver's Salesforce endpoints, one Flask blueprint:

    POST /hooks/salesforce/outbound   Outbound Messages (SOAP 1.1), checked by organization id; answered with the ACK
    POST /hooks/salesforce/flow       Flow HTTP callouts (JSON), checked by a shared secret header

Both store events through `crmrules.api.ingest` before answering, so an answer means "kept": a crash before it
makes Salesforce send again, and the inbox drops what it already has (by notification id for Outbound
Messages), so the redelivered envelope is ACKed without its old notifications running twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError

from crmrules.api import RECORD_UPDATE, Event, Rejected, ingest, plugin_context, runtime
from crmrules.config import secret

from . import soap
from .records import KINDS, record_events, parse_time, sobject_of
from .settings import NAME, SECRETS, SalesforceSettings

log = logging.getLogger("crmrules.salesforce")

MAX_FLOW_EVENTS = 200  # a Flow sends one record per callout, or a collection in {"events": [...]}


def options() -> SalesforceSettings:
    """This deployment's options; a misconfiguration answers 503, never 500."""

    try:
        found: SalesforceSettings = plugin_context(NAME).options
    except ValueError as exc:
        log.error("%s", exc)
        raise Rejected(503, "the Salesforce plugin is misconfigured; see the sidecar's log") from None
    return found


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing does not leak how much of a guess was right."""

    return given is not None and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def org_matches(sent: str, configured: str) -> bool:
    """Ids are case-sensitive in their 15-character form; the 3 extra characters only encode letter case.

    Either side may be written in 15 or 18 characters: two 18-character ids must be equal, otherwise the first
    15 decide. Compared in constant time.
    """

    if len(sent) not in (15, 18):
        return False
    if len(sent) == len(configured) == 18:
        return hmac.compare_digest(sent.encode(), configured.encode())
    return hmac.compare_digest(sent[:15].encode(), configured[:15].encode())


def _body(limit_default: int = 1_000_000) -> bytes:
    limit = int((runtime().settings or {}).get("max_body_bytes") or limit_default)
    if request.content_length is not None and request.content_length > limit:
        raise Rejected(413, f"body larger than {limit} bytes")
    data = request.get_data(cache=False)
    if len(data) > limit:
        raise Rejected(413, f"body larger than {limit} bytes")
    return data


_ERROR = {"description": "refused; nothing was stored",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
OPENAPI: dict[str, Any] = {
    "/hooks/salesforce/outbound": {"post": {
        "summary": "Salesforce Outbound Message (SOAP 1.1 notifications, up to 100 per envelope)",
        "operationId": "salesforceOutboundMessage", "tags": [NAME],
        "parameters": [{"name": "token", "in": "query", "required": False, "schema": {"type": "string"},
                        "description": "required when SALESFORCE_OUTBOUND_TOKEN is set"}],
        "requestBody": {"required": True, "content": {"text/xml": {"schema": {"type": "string"}}}},
        "responses": {
            "200": {"description": "stored (or seen before): the notificationsResponse ACK",
                    "content": {"text/xml": {"schema": {"type": "string"}, "example": soap.ACK}}},
            "400": _ERROR, "401": _ERROR, "403": _ERROR, "413": _ERROR, "503": _ERROR}}},
    "/hooks/salesforce/flow": {"post": {
        "summary": "Salesforce Flow HTTP callout: {event, record, occurred_at} or {events: [...]}",
        "operationId": "salesforceFlowCallout", "tags": [NAME],
        "parameters": [{"name": "X-Crmrules-Secret", "in": "header", "required": False,
                        "schema": {"type": "string"},
                        "description": "SALESFORCE_FLOW_SECRET (or Authorization: Bearer <secret>)"}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "properties": {
            "event": {"type": "string", "default": "record_update"}, "record": {"type": "object"},
            "occurred_at": {"type": ["string", "integer"]}, "id": {"type": "string"},
            "sobject": {"type": "string"}, "properties": {"type": "object"},
            "events": {"type": "array", "items": {"type": "object"}, "maxItems": MAX_FLOW_EVENTS}}}}}},
        "responses": {
            "200": {"description": "stored", "content": {"application/json": {"schema": {"type": "object", "properties": {
                "accepted": {"type": "integer"}, "duplicates": {"type": "integer"}}}}}},
            "400": _ERROR, "401": _ERROR, "413": _ERROR, "503": _ERROR}}},
}


def make_blueprint() -> Blueprint:
    bp = Blueprint(NAME, __name__, url_prefix="/hooks/salesforce")
    bp.add_url_rule("/outbound", view_func=outbound, methods=["POST"])
    bp.add_url_rule("/flow", view_func=flow, methods=["POST"])
    return bp


# ---------------------------------------------------------------- Outbound Messages

def outbound() -> Response:
    """Salesforce Outbound Message: verify the org, store new notifications, ACK."""

    opts = options()
    token = secret(SECRETS["outbound_token"])
    if token and not same_secret(request.args.get("token"), token):
        raise Rejected(401, "missing or wrong ?token= in the endpoint URL")
    expected = opts.organization_id or secret(SECRETS["organization_id"])
    if not expected:
        raise Rejected(503, "set plugins.salesforce.organization_id to accept Outbound Messages")
    try:
        message = soap.parse(_body())
    except soap.BadMessage as exc:
        raise Rejected(400, str(exc)) from None
    if not org_matches(message.organization_id, expected):
        log.warning("Outbound Message from organization %s refused", message.organization_id[:18])
        raise Rejected(403, "this endpoint accepts Outbound Messages of another organization")
    received = dt.datetime.now(dt.timezone.utc)
    events: list[Event] = []
    for notification in message.notifications:
        if notification.sobject not in KINDS:
            raise Rejected(400, f"sObject type {notification.sobject} is not supported "
                                f"(send {', '.join(KINDS)})")
        try:
            events += record_events(notification.sobject, notification.fields, event_id=notification.id,
                                    options=opts, received_at=received)
        except (ValueError, ValidationError) as exc:
            raise Rejected(400, f"notification {notification.id}: {exc}") from None
    new = ingest(events) if events else []
    log.info("Outbound Message %s: %d notifications, %d new events, %d seen before", message.action_id,
             len(message.notifications), sum(new), len(new) - sum(new))
    return Response(soap.ACK, status=200, content_type=soap.ACK_CONTENT_TYPE)


# ---------------------------------------------------------------- Flow callouts

def _check_flow_secret(opts: SalesforceSettings) -> None:
    expected = secret(SECRETS["flow_secret"])
    if not expected:
        raise Rejected(503, "set SALESFORCE_FLOW_SECRET to accept Flow callouts")
    given = request.headers.get(opts.flow_secret_header)
    auth = request.headers.get("Authorization", "")
    if given is None and auth[:7].lower() == "bearer ":
        given = auth[7:].strip()
    if not same_secret(given, expected):
        raise Rejected(401, f"missing or wrong {opts.flow_secret_header} header")


def flow() -> Response:
    """Salesforce Flow HTTP callout: verify the shared secret, store the events."""

    opts = options()
    _check_flow_secret(opts)
    try:
        body = json.loads(_body())
    except (ValueError, UnicodeDecodeError):
        raise Rejected(400, "the body is not JSON") from None
    items = body.get("events") if isinstance(body, dict) and "events" in body else [body]
    if not isinstance(items, list) or not items or len(items) > MAX_FLOW_EVENTS:
        raise Rejected(400, f"send one callout object, or {{\"events\": [...]}} with 1 to {MAX_FLOW_EVENTS}")
    received = dt.datetime.now(dt.timezone.utc)
    events: list[Event] = []
    for index, item in enumerate(items):
        try:
            events += flow_events(item, opts, received)
        except (ValueError, ValidationError) as exc:
            where = f"events[{index}]: " if len(items) > 1 else ""
            raise Rejected(400, f"{where}{exc}") from None
    new = ingest(events)
    return jsonify(accepted=sum(new), duplicates=len(new) - sum(new))


def flow_events(item: Any, opts: SalesforceSettings, received: dt.datetime) -> list[Event]:
    """`{"event": type, "record": {...}, "occurred_at": ..., "id"?: ..., "properties"?: {...}}` → events.

    The id is the callout's own `id` when the Flow sends one (e.g. {!$Flow.InterviewGuid} plus the record id);
    otherwise a hash of the whole item, so a retried callout with the same body is stored once.
    """

    if not isinstance(item, dict):
        raise ValueError("expected an object with `event` and `record`")
    record = item.get("record")
    if not isinstance(record, dict):
        raise ValueError("`record` must be the Salesforce record, an object with at least its Id")
    given_attributes = record.get("attributes")
    attributes: dict[str, Any] = given_attributes if isinstance(given_attributes, dict) else {}
    sobject = item.get("sobject") or attributes.get("type") or sobject_of(str(record.get("Id") or ""))
    if sobject not in KINDS:
        raise ValueError(f"cannot tell the record's sObject type ({sobject!r}); send Lead, Contact, Account "
                         "or Opportunity records, or say which in `sobject`")
    event_type = str(item.get("event") or RECORD_UPDATE)
    occurred_at = None
    if item.get("occurred_at") not in (None, ""):
        occurred_at = parse_time(item["occurred_at"])
        if occurred_at is None:
            raise ValueError(f"occurred_at {item['occurred_at']!r} is not an ISO time with a zone or epoch ms")
    extra = item.get("properties")
    if extra is not None and not isinstance(extra, dict):
        raise ValueError("`properties` must be an object")
    given_id = item.get("id")
    if isinstance(given_id, str) and given_id.strip():
        event_id = f"flow:{given_id.strip()}"
    else:
        canonical = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        event_id = "flow:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
    return record_events(sobject, record, event_id=event_id, options=opts, received_at=received,
                         event_type=event_type, occurred_at=occurred_at, extra=extra)
