"""The web tracker's HTTP endpoints, Segment-compatible, as one Flask blueprint.

    POST /v1/track /v1/page /v1/identify /v1/screen /v1/group /v1/alias   one message (Segment HTTP API)
    POST /v1/t /v1/p /v1/i /v1/s /v1/g /v1/a                             the same, as analytics-next posts them
    POST /v1/batch /v1/b /v1/import                                      {"batch": [...]} (analytics-python, ajs)
    GET  /v1/onsite?writeKey=&anonymousId=&userId=                       on-site messages waiting for this visitor
    POST /v1/onsite/shown                                                {"writeKey", "anonymousId", "ids": [...]}
    GET  /v1/crmrules.js                                                 the on-site snippet

Every endpoint answers CORS (preflight included) for the configured origins, since the pages posting here are
on the customer's site, not on the sidecar's origin.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import math
from importlib import resources
from typing import Any

from flask import Blueprint, Response, g, request

from crmrules.api import EntityRef, Event, Rejected, ingest, plugin_context

from . import segment
from .limits import RateLimiter, TooLarge, gunzip
from .onsite import OnsiteStore, open_onsite
from .settings import TrackerSettings, onsite_path

log = logging.getLogger("crmrules.web_tracker")

NAME = "web_tracker"
SINGLE = {"track": "track", "t": "track", "page": "page", "p": "page", "identify": "identify", "i": "identify",
          "screen": "screen", "s": "screen", "group": "group", "g": "group", "alias": "alias", "a": "alias"}
BATCH = ("batch", "b", "import")
ALLOW_HEADERS = "Authorization, Content-Type, Content-Encoding, X-Retry-Count"
CODES = {400: "bad_request", 401: "unauthorized", 413: "payload_too_large", 415: "unsupported_media_type",
         429: "rate_limited", 503: "unavailable"}


def options() -> TrackerSettings:
    """This deployment's web tracker options; a misconfiguration answers 503, never 500."""

    try:
        found: TrackerSettings = plugin_context(NAME).options
    except ValueError as exc:
        log.error("%s", exc)
        raise Rejected(503, "the web tracker is misconfigured; see the sidecar's log") from None
    return found


def onsite_store(opts: TrackerSettings) -> OnsiteStore:
    return open_onsite(onsite_path(opts, plugin_context(NAME).data_dir))


def snippet_source() -> str:
    return resources.files(__package__).joinpath("static", "crmrules.js").read_text(encoding="utf-8")


# ---------------------------------------------------------------- request helpers

def _auth_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Rejected(401, "the Authorization header is not valid Basic auth (base64 of 'writeKey:')") from None
    return decoded.split(":", 1)[0] or None


def write_key(body: Any = None) -> str:
    """The request's write key: Basic auth user (Segment), else `writeKey` in the body or the query string."""

    from_header = _auth_key()
    from_body = body.get("writeKey") if isinstance(body, dict) else None
    from_query = request.args.get("writeKey")
    if from_header and isinstance(from_body, str) and from_body and from_body != from_header:
        raise Rejected(401, "the write key in the Authorization header and in the body differ")
    key = from_header or (from_body if isinstance(from_body, str) else None) or from_query
    if not key:
        raise Rejected(401, "no write key: send Basic auth (writeKey as user) or \"writeKey\" in the body")
    if key not in options().write_keys:
        raise Rejected(401, "unknown write key")
    g.crmrules_write_key = key
    return key


def read_body(cap: int, inflated_cap: int) -> bytes:
    length = request.content_length
    if length is not None and length > cap:
        raise Rejected(413, f"the body is {length} bytes; at most {cap} are accepted here")
    data = request.get_data(cache=True) if length is not None else request.stream.read(cap + 1)
    if len(data) > cap:
        raise Rejected(413, f"the body is over {cap} bytes")
    encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding == "gzip":
        try:
            return gunzip(data, inflated_cap)
        except TooLarge as exc:
            raise Rejected(413, str(exc)) from None
        except ValueError as exc:
            raise Rejected(400, str(exc)) from None
    if encoding != "identity":
        raise Rejected(415, f"Content-Encoding {encoding!r} is not accepted; send gzip or nothing")
    return data


def read_json(cap: int, inflated_cap: int | None = None) -> Any:
    raw = read_body(cap, inflated_cap or cap)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected(400, f"the body is not UTF-8 JSON: {exc}") from None


def rate_limit(limiter: RateLimiter, key: str, cost: int) -> None:
    opts = options()
    wait = limiter.take(key, max(cost, 1), opts.rate_per_second, opts.rate_burst)
    if wait == math.inf:
        raise Rejected(413, f"{cost} events in one request is more than this write key's burst "
                            f"({opts.rate_burst}); send smaller batches")
    if wait > 0:
        g.crmrules_retry_after = max(1, math.ceil(wait))
        raise Rejected(429, f"write key over {opts.rate_per_second:g} events/s; retry after "
                            f"{g.crmrules_retry_after}s")


def _visitor(data: dict[str, Any]) -> dict[str, str]:
    ids = {}
    for field, kind in (("anonymousId", "anonymous_id"), ("userId", "user_id")):
        value = data.get(field)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            ids[kind] = str(value).strip()[:segment.MAX_ID_CHARS]
    return ids


# ---------------------------------------------------------------- the blueprint

def make_blueprint() -> Blueprint:
    bp = Blueprint(NAME, __name__)
    limiter = RateLimiter()

    @bp.after_request
    def cors(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin:
            allowed = _allowed_origins()
            if "*" in allowed or origin in allowed:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
                response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
                response.headers["Access-Control-Expose-Headers"] = "Retry-After"
                response.headers["Access-Control-Max-Age"] = "600"
            response.vary.add("Origin")
        retry_after = g.get("crmrules_retry_after")
        if retry_after and response.status_code == 429:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @bp.errorhandler(Rejected)
    def rejected(exc: Rejected) -> Response:
        # Segment's error shape, which analytics-python logs ({"code", "message"}), and the receiver's ("error").
        body = {"success": False, "code": CODES.get(exc.status, "error"), "message": exc.reason,
                "error": exc.reason}
        if exc.status >= 500:
            log.warning("web tracker: %s %s: %s", request.method, request.path, exc.reason)
        return Response(json.dumps(body), status=exc.status, content_type="application/json")

    def preflight() -> Response:
        return Response(status=204)

    def collect(kind: str | None) -> Response:
        if request.method == "OPTIONS":
            return preflight()
        opts = options()
        if kind is None:
            body = read_json(opts.max_batch_bytes, opts.decompressed_cap)
        else:
            body = read_json(opts.max_event_bytes)
        key = write_key(body)
        count = len(body["batch"]) if kind is None and isinstance(body, dict) and \
            isinstance(body.get("batch"), list) else 1
        rate_limit(limiter, key, count)
        received = dt.datetime.now(dt.timezone.utc)
        try:
            events = segment.to_events(body, kind, received, opts)
        except segment.BadMessage as exc:
            raise Rejected(exc.status, exc.reason) from None
        new = ingest(events) if events else []
        return _json({"success": True, "accepted": sum(new), "duplicates": len(new) - sum(new)})

    for path, kind in SINGLE.items():
        bp.add_url_rule(f"/v1/{path}", f"single_{path}", lambda kind=kind: collect(kind),
                        methods=["POST", "OPTIONS"])
    for path in BATCH:
        bp.add_url_rule(f"/v1/{path}", f"batch_{path}", lambda: collect(None), methods=["POST", "OPTIONS"])

    @bp.route("/v1/onsite", methods=["GET", "OPTIONS"])
    def onsite() -> Response:
        if request.method == "OPTIONS":
            return preflight()
        opts = options()
        key = write_key()
        rate_limit(limiter, key, 1)
        ids = _visitor(request.args)
        messages = onsite_store(opts).claim(ids, opts.onsite_lookup, opts.onsite_lease, opts.onsite_per_page)
        response = _json({"messages": [{"id": m.id, "subject": m.subject, "body": m.body, "locale": m.locale}
                                       for m in messages]})
        response.headers["Cache-Control"] = "no-store"
        return response

    @bp.route("/v1/onsite/shown", methods=["POST", "OPTIONS"])
    def shown() -> Response:
        if request.method == "OPTIONS":
            return preflight()
        opts = options()
        body = read_json(opts.max_event_bytes)
        if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
            raise Rejected(400, "send {\"writeKey\", \"anonymousId\", \"userId\", \"ids\": [message ids]}")
        key = write_key(body)
        rate_limit(limiter, key, 1)
        ids = _visitor(body)
        marked = onsite_store(opts).mark_shown(ids, opts.onsite_lookup, body["ids"])
        if marked:
            # Rules can react to it (`happened: onsite_message_shown`); still an untrusted web event, and about
            # one id only, so that it never links two ids (stitching is identify's job).
            kind = next(k for k in ("anonymous_id", "user_id") if k in ids and k in opts.onsite_lookup)
            now = dt.datetime.now(dt.timezone.utc)
            ingest([Event(id=f"onsite-shown-{m.id}", source=segment.SOURCE, type="onsite_message_shown",
                          occurred_at=now, subject=EntityRef(kind="lead", ids={kind: ids[kind]}),
                          properties={"rule": m.rule, "message_id": m.id}) for m in marked])
        return _json({"success": True, "marked": len(marked)})

    @bp.route("/v1/crmrules.js", methods=["GET"])
    def snippet() -> Response:
        response = Response(snippet_source(), content_type="application/javascript; charset=utf-8")
        response.headers["Cache-Control"] = "public, max-age=300"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return bp


def _allowed_origins() -> list[str]:
    try:
        return options().allowed_origins
    except Rejected:
        return []


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, ensure_ascii=False), status=status, content_type="application/json")
