"""HubSpot CRM REST stand-in for tests. This is NOT HubSpot.

A small in-memory Flask app answering the HubSpot endpoints our adapter uses,
with request and response shapes taken from developers.hubspot.com (CRM objects
v3, search, associations v4, transactional single-send v3) and from the models
in hubspot-api-client 12, so the real client can talk to it over loopback HTTP.
It keeps no data between apps and never talks to the network.

Pointing the real client at it (hubspot-api-client 12.x)::

    from hubspot import HubSpot
    from tests.support.servers import serve            # or: from support.servers import serve
    from tests.standins.hubspot import create_app

    app = create_app(token="test-token")
    with serve(app) as server:
        client = HubSpot(access_token="test-token", host=server.url)
        client.crm.contacts.basic_api.get_by_id("1001")

Any keyword given to ``HubSpot(...)`` is set on every generated API package's
``Configuration``; ``host`` replaces the default ``https://api.hubapi.com``.
``retry=urllib3.util.Retry(...)`` becomes ``Configuration.retries``. Per call,
the generated methods accept ``_request_timeout=<seconds>`` and
``_headers={...}`` (extra request headers).

Covered endpoints (object types: contacts, companies, deals, tasks, notes,
communications; aliases like ``contact`` or ``0-1`` are accepted):

* ``POST   /crm/v3/objects/{type}`` (201; ``associations`` in the v4 form)
* ``GET    /crm/v3/objects/{type}/{id}`` (``properties`` query param)
* ``PATCH  /crm/v3/objects/{type}/{id}``, ``DELETE`` (archive, 204)
* ``POST   /crm/v3/objects/{type}/search`` (filterGroups, sorts, limit, after)
* ``PUT    /crm/v4/objects/{from}/{fromId}/associations/default/{to}/{toId}``
* ``POST   /marketing/v3/transactional/single-email/send``

Every request needs ``Authorization: Bearer <token>``; otherwise 401 with
HubSpot's error JSON. State is ``app.config["STATE"]`` (a :class:`HubSpotState`):
objects, associations, property updates, sent emails, every request seen (with
headers), and a fault queue -- ``state.queue_fault(status=429, headers=...)``,
``state.queue_fault(status=500)``, ``state.queue_fault(delay=3.0)`` -- see
``_base.StandinState.queue_fault``.

Known simplifications (real HubSpot differs): any property name is accepted
unless ``state.known_properties`` is set; error ``message`` texts are
approximations (``category`` values follow the docs); search is immediately
consistent unless ``state.search_visibility_delay`` is set (real search lags
creates/updates by seconds); single-send does not create contacts.
"""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from flask import Flask, Response, request

from ._base import StandinState, install_hooks, json_response

__all__ = ["ASSOCIATION_TYPE_IDS", "Association", "HsObject", "HubSpotState", "create_app"]

OBJECT_TYPES = ("contacts", "companies", "deals", "tasks", "notes", "communications")
_ALIASES = {
    "contact": "contacts", "0-1": "contacts",
    "company": "companies", "0-2": "companies",
    "deal": "deals", "0-3": "deals",
    "task": "tasks", "0-27": "tasks",
    "note": "notes", "0-46": "notes",
    "communication": "communications", "0-18": "communications",
}

# HUBSPOT_DEFINED unlabeled ("default") association type ids, per direction,
# from HubSpot's associations v4 type table.
ASSOCIATION_TYPE_IDS: dict[tuple[str, str], int] = {
    ("contacts", "companies"): 279, ("companies", "contacts"): 280,
    ("deals", "contacts"): 3, ("contacts", "deals"): 4,
    ("deals", "companies"): 341, ("companies", "deals"): 342,
    ("tasks", "contacts"): 204, ("contacts", "tasks"): 203,
    ("tasks", "companies"): 192, ("companies", "tasks"): 191,
    ("tasks", "deals"): 216, ("deals", "tasks"): 215,
    ("notes", "contacts"): 202, ("contacts", "notes"): 201,
    ("notes", "companies"): 190, ("companies", "notes"): 189,
    ("notes", "deals"): 214, ("deals", "notes"): 213,
    ("communications", "contacts"): 81, ("contacts", "communications"): 82,
    ("communications", "companies"): 87, ("companies", "communications"): 88,
    ("communications", "deals"): 85, ("deals", "communications"): 86,
}
# Primary-company labels are also HUBSPOT_DEFINED.
_PRIMARY_TYPE_IDS = {("contacts", "companies"): 1, ("companies", "contacts"): 2,
                     ("deals", "companies"): 5, ("companies", "deals"): 6}
_TARGET_BY_TYPE_ID = {(src, tid): dst for (src, dst), tid in
                      {**ASSOCIATION_TYPE_IDS, **_PRIMARY_TYPE_IDS}.items()}

_CREATED = {"contacts": "createdate", "companies": "createdate", "deals": "createdate"}
_MODIFIED = {"contacts": "lastmodifieddate"}  # every other object: hs_lastmodifieddate
_DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage",
              "hs_lastmodifieddate", "hs_object_id", "pipeline"),
}
_REQUIRED = {
    "tasks": ("hs_timestamp",),
    "notes": ("hs_timestamp",),
    "communications": ("hs_communication_channel_type", "hs_communication_logged_from"),
}
_DATE_PROPERTIES = {"createdate", "hs_createdate", "lastmodifieddate", "hs_lastmodifieddate",
                    "hs_timestamp", "closedate"}
_SEARCH_LIMIT_MAX = 200
_SEARCH_RESULTS_MAX = 10_000
_FILTER_GROUPS_MAX, _FILTERS_PER_GROUP_MAX, _FILTERS_TOTAL_MAX = 5, 6, 18


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """HubSpot's timestamp form: UTC, millisecond precision, ``Z``."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def to_millis(value: str) -> int | None:
    """Parse a date filter/property value: epoch milliseconds or ISO 8601."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


@dataclass
class HsObject:
    """One CRM record; ``properties`` values are strings (or None), as HubSpot returns them."""

    object_type: str
    id: str
    properties: dict[str, str | None]
    created_at: datetime
    updated_at: datetime
    archived: bool = False
    written_at: float = 0.0  # stand-in clock time of the last write, for search visibility


@dataclass(frozen=True)
class Association:
    from_type: str
    from_id: str
    to_type: str | None
    to_id: str
    category: str
    type_id: int


@dataclass
class PropertyUpdate:
    object_type: str
    id: str
    properties: dict[str, str | None]
    at: datetime


class HubSpotState(StandinState):
    """Everything the stand-in knows; tests read and seed it directly."""

    def __init__(self, token: str = "test-token") -> None:
        super().__init__()
        self.token = token
        self.objects: dict[str, dict[str, HsObject]] = {t: {} for t in OBJECT_TYPES}
        self.associations: list[Association] = []
        self.property_updates: list[PropertyUpdate] = []
        self.emails_sent: list[dict[str, Any]] = []
        # Set e.g. {"contacts": {"email", "lead_score"}} to reject unknown property names.
        self.known_properties: dict[str, set[str]] | None = None
        # Seconds a created/updated record stays invisible to search (real HubSpot lags).
        self.search_visibility_delay: float = 0.0
        self.clock: Callable[[], datetime] = _utc_now
        self._ids = itertools.count(1001)

    # -- seeding and reading -------------------------------------------------
    def add(self, object_type: str, properties: dict[str, Any], *,
            created_at: datetime | None = None, updated_at: datetime | None = None) -> HsObject:
        """Insert a record directly (no HTTP), e.g. with a chosen modification time."""
        object_type = _ALIASES.get(object_type, object_type)
        now = self.clock()
        created = created_at or updated_at or now
        with self.lock:
            obj = HsObject(object_type, str(next(self._ids)), {}, created, updated_at or created,
                           written_at=now.timestamp())
            obj.properties.update({k: _as_str(v) for k, v in properties.items()})
            _stamp(obj)
            self.objects[object_type][obj.id] = obj
        return obj

    def get(self, object_type: str, object_id: str) -> HsObject | None:
        return self.objects[_ALIASES.get(object_type, object_type)].get(str(object_id))

    @property
    def tasks(self) -> list[HsObject]:
        return list(self.objects["tasks"].values())

    @property
    def notes(self) -> list[HsObject]:
        return list(self.objects["notes"].values())

    def associations_of(self, from_type: str, from_id: str) -> list[Association]:
        from_type = _ALIASES.get(from_type, from_type)
        return [a for a in self.associations if a.from_type == from_type and a.from_id == str(from_id)]

    def queue_rate_limit(self, retry_after: float | None = None, *,
                         policy: str = "TEN_SECONDLY_ROLLING", path_prefix: str | None = None,
                         times: int = 1) -> None:
        """Queue HubSpot's 429; ``Retry-After`` only if given (HubSpot does not promise it)."""
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        self.queue_fault(429, headers=headers, body=rate_limit_body(policy),
                         path_prefix=path_prefix, times=times)


def _as_str(value: Any) -> str | None:
    if value is None:
        return ""  # HubSpot clears a property when sent null/empty
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _stamp(obj: HsObject) -> None:
    """Keep the system properties in step with the record's timestamps."""
    obj.properties["hs_object_id"] = obj.id
    obj.properties[_CREATED.get(obj.object_type, "hs_createdate")] = iso(obj.created_at)
    obj.properties[_MODIFIED.get(obj.object_type, "hs_lastmodifieddate")] = iso(obj.updated_at)
    if "hs_timestamp" in obj.properties and obj.properties["hs_timestamp"]:
        millis = to_millis(obj.properties["hs_timestamp"] or "")
        if millis is not None:
            obj.properties["hs_timestamp"] = iso(datetime.fromtimestamp(millis / 1000, timezone.utc))


def _system_properties(object_type: str) -> tuple[str, ...]:
    return ("hs_object_id", _CREATED.get(object_type, "hs_createdate"),
            _MODIFIED.get(object_type, "hs_lastmodifieddate"))


# -- error bodies -------------------------------------------------------------
def error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    """HubSpot's common error shape (status/message/correlationId/category)."""
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
            "category": category, **extra}


def rate_limit_body(policy: str = "TEN_SECONDLY_ROLLING") -> dict[str, Any]:
    """HubSpot's 429 shape: errorType RATE_LIMIT plus the policy that tripped."""
    return {"status": "error", "message": f"You have reached your {policy.lower()} limit.",
            "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
            "policyName": policy, "requestId": str(uuid.uuid4())}


_CATEGORY_BY_STATUS = {400: "VALIDATION_ERROR", 401: "INVALID_AUTHENTICATION",
                       403: "MISSING_SCOPES", 404: "OBJECT_NOT_FOUND", 409: "CONFLICT"}


def default_error_body(status: int) -> dict[str, Any]:
    if status == 429:
        return rate_limit_body()
    if status == 401:
        return _auth_error_body()
    if status >= 500:
        return error_body("internal error", "INTERNAL_ERROR")
    return error_body(f"stand-in injected HTTP {status}", _CATEGORY_BY_STATUS.get(status, "VALIDATION_ERROR"))


def _auth_error_body() -> dict[str, Any]:
    return error_body(
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
        "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        "INVALID_AUTHENTICATION")


def _fail(status: int, message: str, category: str | None = None, **extra: Any) -> Response:
    return json_response(error_body(message, category or _CATEGORY_BY_STATUS.get(status, "VALIDATION_ERROR"),
                                    **extra), status)


def _invalid_properties(problems: list[dict[str, Any]]) -> Response:
    return _fail(400, "Property values were not valid: " + json.dumps(problems), "VALIDATION_ERROR")


# -- the app ------------------------------------------------------------------
def create_app(token: str = "test-token") -> Flask:
    """Build a fresh stand-in; its state is ``app.config["STATE"]``."""
    app = Flask("hubspot_standin")
    state = HubSpotState(token=token)
    app.config["STATE"] = state

    def check_auth() -> Response | None:
        if request.headers.get("Authorization", "") != f"Bearer {state.token}":
            return json_response(_auth_error_body(), 401)
        return None

    install_hooks(app, state, check_auth=check_auth, default_error_body=default_error_body)

    @app.errorhandler(404)
    def _no_route(_: Exception) -> Response:
        return _fail(404, f"Unable to route {request.method} {request.path}", "OBJECT_NOT_FOUND")

    @app.errorhandler(405)
    def _bad_method(_: Exception) -> Response:
        return _fail(405, f"HTTP {request.method} is not supported by {request.path}", "VALIDATION_ERROR")

    def object_type_or_404(raw: str) -> str | None:
        object_type = _ALIASES.get(raw.lower(), raw.lower())
        return object_type if object_type in OBJECT_TYPES else None

    def check_properties(object_type: str, props: dict[str, Any]) -> list[dict[str, Any]]:
        known = (state.known_properties or {}).get(object_type)
        if known is None:
            return []
        return [{"isValid": False, "message": f'Property "{name}" does not exist',
                 "error": "PROPERTY_DOESNT_EXIST", "name": name}
                for name in props if name not in known]

    def render(obj: HsObject, names: Iterable[str]) -> dict[str, Any]:
        ordered = list(dict.fromkeys([*names, *_system_properties(obj.object_type)]))
        body: dict[str, Any] = {"id": obj.id, "properties": {n: obj.properties.get(n) for n in ordered},
                                "createdAt": iso(obj.created_at), "updatedAt": iso(obj.updated_at),
                                "archived": obj.archived}
        return body

    def requested_properties(object_type: str) -> list[str]:
        names = [n for raw in request.args.getlist("properties") for n in raw.split(",") if n]
        return names or list(_DEFAULT_PROPERTIES.get(object_type, ()))

    @app.post("/crm/v3/objects/<raw_type>")
    def create_object(raw_type: str) -> Response:
        object_type = object_type_or_404(raw_type)
        if object_type is None:
            return _fail(404, f"Unable to infer object type from: {raw_type}", "OBJECT_NOT_FOUND")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            return _fail(400, "Invalid input JSON: 'properties' object is required")
        props: dict[str, Any] = body["properties"]
        problems = check_properties(object_type, props)
        problems += [{"isValid": False, "message": f"{name} is required", "error": "REQUIRED_FIELD",
                      "name": name}
                     for name in _REQUIRED.get(object_type, ()) if not _as_str(props.get(name))]
        if problems:
            return _invalid_properties(problems)
        with state.lock:
            links, error = parse_associations(object_type, body.get("associations") or [])
            if error is not None:
                return error
            email = (props.get("email") or "").strip().lower() if object_type == "contacts" else ""
            if email:
                for existing in state.objects["contacts"].values():
                    if not existing.archived and (existing.properties.get("email") or "").lower() == email:
                        return _fail(409, f"Contact already exists. Existing ID: {existing.id}", "CONFLICT")
            obj = state.add(object_type, props)
            for to_type, to_id, category, type_id in links:
                state.associations.append(Association(object_type, obj.id, to_type, to_id, category, type_id))
        return json_response(render(obj, props.keys()), 201)

    def parse_associations(object_type: str, raw: Any
                           ) -> tuple[list[tuple[str | None, str, str, int]], Response | None]:
        """Validate the v4-style ``associations`` of a create request before writing anything."""
        links: list[tuple[str | None, str, str, int]] = []
        if not isinstance(raw, list):
            return links, _fail(400, "associations must be a list")
        for item in raw:
            to_id = str(((item or {}).get("to") or {}).get("id") or "")
            types = (item or {}).get("types")
            if not to_id or not isinstance(types, list) or not types:
                return links, _fail(400, "Each association needs to.id and a non-empty types list")
            for spec in types:
                category = spec.get("associationCategory")
                type_id = spec.get("associationTypeId")
                if category not in ("HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED") \
                        or not isinstance(type_id, int):
                    return links, _fail(400, f"Invalid association type spec: {spec}")
                to_type = None
                if category == "HUBSPOT_DEFINED":
                    to_type = _TARGET_BY_TYPE_ID.get((object_type, type_id))
                    if to_type is None:
                        return links, _fail(400, f"associationTypeId {type_id} is not a HUBSPOT_DEFINED "
                                                 f"type from {object_type}")
                    target = state.get(to_type, to_id)
                    if target is None or target.archived:
                        return links, _fail(400, f"One or more associations are invalid: {to_type} "
                                                 f"{to_id} does not exist")
                links.append((to_type, to_id, category, type_id))
        return links, None

    def live_object(raw_type: str, object_id: str) -> tuple[HsObject | None, Response | None]:
        object_type = object_type_or_404(raw_type)
        if object_type is None:
            return None, _fail(404, f"Unable to infer object type from: {raw_type}", "OBJECT_NOT_FOUND")
        obj = state.get(object_type, object_id)
        if obj is None or obj.archived:
            return None, _fail(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND",
                               context={"id": [object_id]})
        return obj, None

    @app.get("/crm/v3/objects/<raw_type>/<object_id>")
    def get_object(raw_type: str, object_id: str) -> Response:
        obj, error = live_object(raw_type, object_id)
        if error is not None:
            return error
        assert obj is not None
        return json_response(render(obj, requested_properties(obj.object_type)))

    @app.patch("/crm/v3/objects/<raw_type>/<object_id>")
    def update_object(raw_type: str, object_id: str) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            return _fail(400, "Invalid input JSON: 'properties' object is required")
        with state.lock:
            obj, error = live_object(raw_type, object_id)
            if error is not None:
                return error
            assert obj is not None
            props = {k: _as_str(v) for k, v in body["properties"].items()}
            problems = check_properties(obj.object_type, props)
            if problems:
                return _invalid_properties(problems)
            obj.properties.update(props)
            now = state.clock()
            obj.updated_at = max(now, obj.updated_at)
            obj.written_at = now.timestamp()
            _stamp(obj)
            state.property_updates.append(PropertyUpdate(obj.object_type, obj.id, props, obj.updated_at))
        return json_response(render(obj, props.keys()))

    @app.delete("/crm/v3/objects/<raw_type>/<object_id>")
    def archive_object(raw_type: str, object_id: str) -> Response:
        with state.lock:
            obj, error = live_object(raw_type, object_id)
            if error is not None:
                return error
            assert obj is not None
            obj.archived = True
        return Response(status=204)

    @app.post("/crm/v3/objects/<raw_type>/search")
    def search(raw_type: str) -> Response:
        object_type = object_type_or_404(raw_type)
        if object_type is None:
            return _fail(404, f"Unable to infer object type from: {raw_type}", "OBJECT_NOT_FOUND")
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _fail(400, "Invalid input JSON")
        groups = body.get("filterGroups") or []
        filters_total = sum(len(g.get("filters") or []) for g in groups)
        if len(groups) > _FILTER_GROUPS_MAX or filters_total > _FILTERS_TOTAL_MAX or any(
                len(g.get("filters") or []) > _FILTERS_PER_GROUP_MAX for g in groups):
            return _fail(400, f"Too many filters: at most {_FILTER_GROUPS_MAX} filterGroups, "
                              f"{_FILTERS_PER_GROUP_MAX} filters per group, {_FILTERS_TOTAL_MAX} in total")
        limit = body.get("limit") if body.get("limit") is not None else 10
        if not isinstance(limit, int) or not 0 <= limit <= _SEARCH_LIMIT_MAX:
            return _fail(400, f"limit must be between 0 and {_SEARCH_LIMIT_MAX}")
        try:
            after = int(body.get("after") or 0)
        except (TypeError, ValueError):
            return _fail(400, f"Invalid after: {body.get('after')!r}")
        if after >= _SEARCH_RESULTS_MAX:
            return _fail(400, f"Search results are limited to {_SEARCH_RESULTS_MAX} total results")
        sorts = body.get("sorts") or []
        if len(sorts) > 1:
            return _fail(400, "Only one sort is supported")
        for group in groups:
            for flt in group.get("filters") or []:
                if flt.get("operator") not in _OPERATORS:
                    return _fail(400, f"Unsupported filter operator: {flt.get('operator')!r}")

        hide_after = state.clock().timestamp() - state.search_visibility_delay
        with state.lock:
            candidates = [o for o in state.objects[object_type].values()
                          if not o.archived and o.written_at <= hide_after]
        text = str(body.get("query") or "").casefold()
        matches = [o for o in candidates
                   if (not groups or any(all(_match(o, f) for f in g.get("filters") or []) for g in groups))
                   and (not text or any(text in (o.properties.get(p) or "").casefold()
                                        for p in _DEFAULT_PROPERTIES.get(object_type, ())))]
        matches.sort(key=lambda o: int(o.id))
        if sorts:
            spec = sorts[0]
            name = spec if isinstance(spec, str) else spec.get("propertyName")
            descending = isinstance(spec, dict) and spec.get("direction") == "DESCENDING"
            present = [o for o in matches if o.properties.get(name) not in (None, "")]
            missing = [o for o in matches if o.properties.get(name) in (None, "")]
            present.sort(key=lambda o: _sort_key(name, o.properties[name] or ""), reverse=descending)
            matches = present + missing
        names = body.get("properties") or list(_DEFAULT_PROPERTIES.get(object_type, ()))
        page = matches[after:after + limit]
        payload: dict[str, Any] = {"total": len(matches), "results": [render(o, names) for o in page]}
        if after + limit < len(matches):
            payload["paging"] = {"next": {"after": str(after + limit)}}
        return json_response(payload)

    @app.put("/crm/v4/objects/<from_raw>/<from_id>/associations/default/<to_raw>/<to_id>")
    def associate_default(from_raw: str, from_id: str, to_raw: str, to_id: str) -> Response:
        started = state.clock()
        from_type, to_type = object_type_or_404(from_raw), object_type_or_404(to_raw)
        if from_type is None or to_type is None:
            return _fail(400, f"Unknown object type in {from_raw} -> {to_raw}")
        forward = ASSOCIATION_TYPE_IDS.get((from_type, to_type))
        backward = ASSOCIATION_TYPE_IDS.get((to_type, from_type))
        if forward is None or backward is None:
            return _fail(400, f"No default association between {from_type} and {to_type}")
        with state.lock:
            for object_type, object_id in ((from_type, from_id), (to_type, to_id)):
                _, error = live_object(object_type, object_id)
                if error is not None:
                    return error
            for link in (Association(from_type, from_id, to_type, to_id, "HUBSPOT_DEFINED", forward),
                         Association(to_type, to_id, from_type, from_id, "HUBSPOT_DEFINED", backward)):
                if link not in state.associations:
                    state.associations.append(link)
        def spec(type_id: int) -> dict[str, Any]:
            return {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}

        return json_response({
            "status": "COMPLETE",
            "results": [{"from": {"id": from_id}, "to": {"id": to_id}, "associationSpec": spec(forward)},
                        {"from": {"id": to_id}, "to": {"id": from_id}, "associationSpec": spec(backward)}],
            "startedAt": iso(started), "completedAt": iso(state.clock())})

    @app.post("/marketing/v3/transactional/single-email/send")
    def single_send() -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("emailId"), int) \
                or not isinstance(body.get("message"), dict) or not body["message"].get("to"):
            return _fail(400, "emailId (integer) and message.to are required")
        requested = state.clock()
        status_id = str(uuid.uuid4())
        with state.lock:
            state.emails_sent.append({"statusId": status_id, **body})
        return json_response({"statusId": status_id, "status": "PENDING", "requestedAt": iso(requested)})

    return app


# -- search filter evaluation -------------------------------------------------
def _comparable(name: str, value: str) -> Any:
    if name in _DATE_PROPERTIES or name == "hs_object_id":
        millis = to_millis(value)
        if millis is not None:
            return millis
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value).casefold()


def _sort_key(name: str, value: str) -> tuple[int, Any]:
    key = _comparable(name, value)
    return (0, key) if isinstance(key, (int, float)) else (1, key)


def _compare(name: str, actual: str, wanted: Any, test: Callable[[Any, Any], bool]) -> bool:
    left, right = _comparable(name, actual), _comparable(name, str(wanted))
    if isinstance(left, str) != isinstance(right, str):
        return False
    return test(left, right)


_OPERATORS: dict[str, Callable[[str, str | None, dict[str, Any]], bool]] = {
    "EQ": lambda n, v, f: v not in (None, "") and _compare(n, v, f.get("value"), lambda a, b: a == b),
    "NEQ": lambda n, v, f: v in (None, "") or not _compare(n, v, f.get("value"), lambda a, b: a == b),
    "LT": lambda n, v, f: v not in (None, "") and _compare(n, v, f.get("value"), lambda a, b: a < b),
    "LTE": lambda n, v, f: v not in (None, "") and _compare(n, v, f.get("value"), lambda a, b: a <= b),
    "GT": lambda n, v, f: v not in (None, "") and _compare(n, v, f.get("value"), lambda a, b: a > b),
    "GTE": lambda n, v, f: v not in (None, "") and _compare(n, v, f.get("value"), lambda a, b: a >= b),
    "BETWEEN": lambda n, v, f: v not in (None, "")
    and _compare(n, v, f.get("value"), lambda a, b: a >= b)
    and _compare(n, v, f.get("highValue"), lambda a, b: a <= b),
    "IN": lambda n, v, f: v not in (None, "")
    and any(_compare(n, v, x, lambda a, b: a == b) for x in f.get("values") or []),
    "NOT_IN": lambda n, v, f: v in (None, "")
    or not any(_compare(n, v, x, lambda a, b: a == b) for x in f.get("values") or []),
    "HAS_PROPERTY": lambda n, v, f: v not in (None, ""),
    "NOT_HAS_PROPERTY": lambda n, v, f: v in (None, ""),
    "CONTAINS_TOKEN": lambda n, v, f: v not in (None, "")
    and str(f.get("value", "")).strip("*").casefold() in v.casefold(),
    "NOT_CONTAINS_TOKEN": lambda n, v, f: v in (None, "")
    or str(f.get("value", "")).strip("*").casefold() not in v.casefold(),
}


def _match(obj: HsObject, flt: dict[str, Any]) -> bool:
    name = str(flt.get("propertyName") or "")
    return _OPERATORS[str(flt.get("operator"))](name, obj.properties.get(name), flt)
