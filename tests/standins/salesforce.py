"""Salesforce REST API stand-in for tests. This is NOT Salesforce.

A small in-memory Flask app answering the REST calls simple-salesforce 1.12
makes for sObject CRUD and SOQL queries, shaped after developer.salesforce.com
(REST API Developer Guide: sObject Rows, Query, Status Codes and Error
Responses; SOQL reference: date formats). It never talks to the network.

simple-salesforce always builds ``https://<instance>/services/data/v59.0/...``
(59.0 is its ``DEFAULT_API_VERSION`` in 1.12.x; ``instance_url`` with a port is
still turned into https). So the client gets a :func:`rewriting_session` that
sends every https URL to the stand-in's ``http://127.0.0.1:<port>`` instead::

    from simple_salesforce import Salesforce
    from tests.standins.salesforce import create_app, rewriting_session

    app = create_app(session_id="test-session")
    with serve(app) as server:
        session = rewriting_session(server.url, timeout=5.0)
        sf = Salesforce(instance="example.my.salesforce.com",
                        session_id="test-session", session=session)
        sf.Lead.create({"LastName": "Kim", "Company": "Acme"})

Covered (``{v}`` is any ``vNN.N``; sObjects: Task, Lead, Contact, Account,
Opportunity -- names are case-insensitive like the real API):

* ``POST   /services/data/{v}/sobjects/{SObject}/`` -> 201 ``{"id", "success", "errors"}``
* ``GET    /services/data/{v}/sobjects/{SObject}/{Id}`` (optional ``fields=``)
* ``PATCH  /services/data/{v}/sobjects/{SObject}/{Id}`` -> 204; ``DELETE`` -> 204
* ``GET    /services/data/{v}/query/?q=SOQL`` and ``/query/{locator}-{offset}`` paging
  (``queryAll`` likewise, including deleted records)

SOQL subset: ``SELECT f1, f2 FROM Obj [WHERE ...] [ORDER BY f [ASC|DESC]
[NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]``; WHERE supports ``= != <> < <=
> >= LIKE IN (...) NOT IN (...)``, ``AND``/``OR``/parentheses, quoted strings,
numbers, ``true/false/null``, and date/dateTime literals
(``2030-01-01T00:00:00Z``, ``...+09:00``; fractional seconds accepted). Like
Salesforce it rejects a quoted value compared to a dateTime field. Not
supported (answered 400 MALFORMED_QUERY saying so): relationship fields
(``Who.Name``), aggregates, subqueries, date literals such as ``TODAY``.

Auth: ``Authorization: Bearer <session_id>`` (or ``OAuth <session_id>``);
otherwise 401 ``[{"message": "Session expired or invalid", "errorCode":
"INVALID_SESSION_ID"}]``. Every response carries ``Sforce-Limit-Info:
api-usage=N/15000`` (simple-salesforce parses it into ``sf.api_usage``).

State is ``app.config["STATE"]`` (:class:`SalesforceState`): records, updates,
every request seen, the fault queue (``state.queue_fault(403)`` gives
REQUEST_LIMIT_EXCEEDED; ``500``, ``503``, ``delay=`` ...), and test knobs:
``query_batch_size`` (real minimum is 200; lower it to exercise paging),
``known_fields`` (reject unknown field names), ``clock``.
"""

from __future__ import annotations

import itertools
import operator
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import requests
from flask import Flask, Response, request

from ._base import StandinState, install_hooks, json_response

__all__ = ["RewritingSession", "SalesforceState", "SfRecord", "create_app", "rewriting_session", "sf_id"]

DEFAULT_API_VERSION = "59.0"  # simple_salesforce.api.DEFAULT_API_VERSION in 1.12.x
KEY_PREFIXES = {"Account": "001", "Contact": "003", "Opportunity": "006", "Lead": "00Q", "Task": "00T"}
REQUIRED_FIELDS = {"Lead": ("LastName", "Company"), "Contact": ("LastName",), "Account": ("Name",),
                   "Opportunity": ("Name", "StageName", "CloseDate")}
DEFAULTS = {"Task": {"Status": "Not Started", "Priority": "Normal"}, "Lead": {"Status": "Open - Not Contacted"}}
REFERENCES = {("Task", "WhoId"): ("Lead", "Contact"), ("Task", "WhatId"): ("Account", "Opportunity"),
              ("Contact", "AccountId"): ("Account",), ("Opportunity", "AccountId"): ("Account",)}
DATETIME_FIELDS = {"createddate", "lastmodifieddate", "systemmodstamp"}
READ_ONLY = {"id", "createddate", "lastmodifieddate", "systemmodstamp", "createdbyid", "lastmodifiedbyid",
             "isdeleted"}
API_DAILY_LIMIT = 15000
_CHECKSUM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def sf_id(prefix: str, number: int) -> str:
    """An 18-character Salesforce-style id: 15 chars plus the case-safe checksum suffix."""
    base = f"{prefix}{'0' * 3}{number:09d}"[:15]
    suffix = ""
    for chunk in range(3):
        bits = sum(1 << i for i, ch in enumerate(base[chunk * 5:chunk * 5 + 5]) if "A" <= ch <= "Z")
        suffix += _CHECKSUM_CHARS[bits]
    return base + suffix


USER_ID = sf_id("005", 1)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def sf_datetime(moment: datetime) -> str:
    """Salesforce's JSON dateTime form: ``2030-01-01T00:00:00.000+0000``."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def parse_sf_datetime(text: str) -> datetime | None:
    """Parse the JSON form or a SOQL literal (``Z``, ``+hh:mm``, ``+hhmm``)."""
    try:
        moment = datetime.fromisoformat(re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text.replace("Z", "+00:00")))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else None


@dataclass
class SfRecord:
    sobject: str
    id: str
    fields: dict[str, Any]
    deleted: bool = False

    def value(self, name: str) -> Any:
        """Field value by case-insensitive API name (SOQL and REST names are case-insensitive)."""
        key = _find_key(self.fields, name)
        return None if key is None else self.fields[key]


def _find_key(fields: dict[str, Any], name: str) -> str | None:
    lowered = name.lower()
    return next((k for k in fields if k.lower() == lowered), None)


@dataclass
class FieldUpdate:
    sobject: str
    id: str
    fields: dict[str, Any]
    at: datetime


class SalesforceState(StandinState):
    """Everything the stand-in knows; tests read and seed it directly."""

    def __init__(self, session_id: str, org_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.org_id = org_id
        self.records: dict[str, dict[str, SfRecord]] = {name: {} for name in KEY_PREFIXES}
        self.updates: list[FieldUpdate] = []
        self.query_batch_size = 2000
        self.known_fields: dict[str, set[str]] | None = None
        self.clock: Callable[[], datetime] = _utc_now
        self._numbers = itertools.count(1)
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        self._locators = itertools.count(1)

    def add(self, sobject: str, fields: dict[str, Any], *, created: datetime | None = None,
            last_modified: datetime | None = None) -> SfRecord:
        """Insert a record directly (no HTTP, no validation), e.g. with a chosen LastModifiedDate."""
        sobject = _canonical_sobject(sobject) or sobject
        now = self.clock()
        created = created or last_modified or now
        modified = last_modified or created
        with self.lock:
            record_id = sf_id(KEY_PREFIXES[sobject], next(self._numbers))
            record = SfRecord(sobject, record_id, {"Id": record_id, **DEFAULTS.get(sobject, {}), **fields,
                                                   "OwnerId": fields.get("OwnerId", USER_ID),
                                                   "IsDeleted": False,
                                                   "CreatedDate": sf_datetime(created), "CreatedById": USER_ID,
                                                   "LastModifiedDate": sf_datetime(modified),
                                                   "LastModifiedById": USER_ID,
                                                   "SystemModstamp": sf_datetime(modified)})
            self.records[sobject][record_id] = record
        return record

    def get(self, sobject: str, record_id: str) -> SfRecord | None:
        canonical = _canonical_sobject(sobject)
        return None if canonical is None else self.records[canonical].get(record_id)

    def find(self, record_id: str) -> SfRecord | None:
        return next((r[record_id] for r in self.records.values() if record_id in r), None)

    @property
    def tasks(self) -> list[SfRecord]:
        return list(self.records["Task"].values())

    @property
    def leads(self) -> list[SfRecord]:
        return list(self.records["Lead"].values())

    def queue_request_limit_exceeded(self, *, times: int = 1, path_prefix: str | None = None) -> None:
        self.queue_fault(403, body=request_limit_body(), times=times, path_prefix=path_prefix)


def _canonical_sobject(name: str) -> str | None:
    return next((s for s in KEY_PREFIXES if s.lower() == name.lower()), None)


# -- errors -------------------------------------------------------------------
def sf_error(message: str, code: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
    """Salesforce REST errors are a JSON array of {message, errorCode[, fields]}."""
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = fields
    return [item]


def request_limit_body() -> list[dict[str, Any]]:
    return sf_error("TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED")


def default_error_body(status: int) -> list[dict[str, Any]]:
    if status == 401:
        return sf_error("Session expired or invalid", "INVALID_SESSION_ID")
    if status == 403:
        return request_limit_body()
    if status == 404:
        return sf_error("The requested resource does not exist", "NOT_FOUND")
    if status == 503:
        return sf_error("Server is temporarily unavailable", "SERVER_UNAVAILABLE")
    return sf_error("An unexpected error occurred. Please include this ErrorId if you contact support: "
                    "0000000000-00000 (0000000000)", "UNKNOWN_EXCEPTION")


def _fail(status: int, message: str, code: str, fields: list[str] | None = None) -> Response:
    return json_response(sf_error(message, code, fields), status)


# -- client-side plumbing -----------------------------------------------------
class RewritingSession(requests.Session):
    """A requests.Session that sends every ``https://`` URL to the stand-in instead.

    Why: simple-salesforce hard-codes https and the instance host. Rewriting
    *every* https URL (not just the instance host) also guarantees a test can
    never reach a real Salesforce by accident. ``timeout`` is applied when the
    caller gives none: simple-salesforce passes no timeout at all by default.
    """

    def __init__(self, standin_url: str, timeout: float | None = 10.0) -> None:
        super().__init__()
        target = urlsplit(standin_url)
        self._scheme, self._netloc = target.scheme, target.netloc
        self.default_timeout = timeout
        self.original_urls: list[str] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        url_text = url.decode() if isinstance(url, bytes) else url
        parts = urlsplit(url_text)
        if parts.scheme == "https":
            self.original_urls.append(url_text)
            url_text = urlunsplit((self._scheme, self._netloc, parts.path, parts.query, parts.fragment))
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url_text, *args, **kwargs)


def rewriting_session(standin_url: str, timeout: float | None = 10.0) -> RewritingSession:
    """Session to pass as ``Salesforce(..., session=rewriting_session(server.url))``."""
    return RewritingSession(standin_url, timeout=timeout)


# -- the app ------------------------------------------------------------------
def create_app(session_id: str = "test-session", org_id: str = "00D000000000001AAA") -> Flask:
    """Build a fresh stand-in; its state is ``app.config["STATE"]``."""
    app = Flask("salesforce_standin")
    state = SalesforceState(session_id, org_id)
    app.config["STATE"] = state

    def check_auth() -> Response | None:
        header = request.headers.get("Authorization", "")
        if header not in (f"Bearer {state.session_id}", f"OAuth {state.session_id}"):
            return json_response(default_error_body(401), 401)
        return None

    install_hooks(app, state, check_auth=check_auth, default_error_body=default_error_body)

    @app.after_request
    def _limit_info(response: Response) -> Response:
        response.headers["Sforce-Limit-Info"] = f"api-usage={len(state.requests)}/{API_DAILY_LIMIT}"
        return response

    @app.errorhandler(404)
    def _no_route(_: Exception) -> Response:
        return json_response(default_error_body(404), 404)

    @app.errorhandler(405)
    def _bad_method(_: Exception) -> Response:
        return _fail(405, f"HTTP Method '{request.method}' not allowed. Allowed are GET,PATCH,DELETE",
                     "METHOD_NOT_ALLOWED")

    def write_errors(sobject: str, fields: dict[str, Any], creating: bool) -> Response | None:
        """Validate names, read-only fields and lookups the way the real API rejects them."""
        for name in fields:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
                return _fail(400, f"No such column '{name}' on sobject of type {sobject}", "INVALID_FIELD")
        known = (state.known_fields or {}).get(sobject)
        if known is not None:
            lowered = {k.lower() for k in known}
            for name in fields:
                if name.lower() not in lowered | READ_ONLY | {"ownerid"}:
                    return _fail(400, f"No such column '{name}' on sobject of type {sobject}", "INVALID_FIELD")
        read_only = [name for name in fields if name.lower() in READ_ONLY]
        if read_only:
            return _fail(400, f"Unable to create/update fields: {', '.join(read_only)}. Please check the "
                              "security settings of this field and verify that it is read/write for your "
                              "profile or permission set.", "INVALID_FIELD_FOR_INSERT_UPDATE", read_only)
        if creating:
            missing = [name for name in REQUIRED_FIELDS.get(sobject, ())
                       if fields.get(_find_key(fields, name) or name) in (None, "")]
            if missing:
                return _fail(400, f"Required fields are missing: [{', '.join(missing)}]",
                             "REQUIRED_FIELD_MISSING", missing)
        for (owner, field_name), targets in REFERENCES.items():
            key = _find_key(fields, field_name)
            if owner != sobject or key is None or fields[key] in (None, ""):
                continue
            value = str(fields[key])
            if value[:3] not in {KEY_PREFIXES[t] for t in targets}:
                return _fail(400, f"{field_name}: id value of incorrect type: {value}",
                             "FIELD_INTEGRITY_EXCEPTION", [field_name])
            target = state.find(value) or state.find(value[:15])
            if target is None or target.deleted:
                return _fail(400, "invalid cross reference id", "INVALID_CROSS_REFERENCE_KEY", [field_name])
        return None

    def record_json(record: SfRecord, version: str, only: list[str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"attributes": {"type": record.sobject,
                                               "url": f"/services/data/v{version}/sobjects/"
                                                      f"{record.sobject}/{record.id}"}}
        if only is None:
            body.update(record.fields)
        else:
            for name in only:
                key = _find_key(record.fields, name)
                body[key or name] = record.fields.get(key) if key else None
        return body

    def live_record(name: str, record_id: str) -> tuple[SfRecord | None, Response | None]:
        sobject = _canonical_sobject(name)
        if sobject is None:
            return None, json_response(default_error_body(404), 404)
        record = state.get(sobject, record_id)
        if record is None and len(record_id) == 15:  # the API accepts 15- and 18-char ids
            record = next((r for r in state.records[sobject].values() if r.id[:15] == record_id), None)
        if record is None or record.deleted:
            return None, json_response(default_error_body(404), 404)
        return record, None

    @app.post("/services/data/v<version>/sobjects/<name>/", strict_slashes=False)
    def create(version: str, name: str) -> Response:
        sobject = _canonical_sobject(name)
        if sobject is None:
            return _fail(404, "The requested resource does not exist", "NOT_FOUND")
        fields = request.get_json(silent=True)
        if not isinstance(fields, dict):
            return _fail(400, "Unexpected character: was expecting a JSON object", "JSON_PARSER_ERROR")
        with state.lock:
            error = write_errors(sobject, fields, creating=True)
            if error is not None:
                return error
            record = state.add(sobject, fields)
        return json_response({"id": record.id, "success": True, "errors": []}, 201,
                             {"Location": f"/services/data/v{version}/sobjects/{sobject}/{record.id}"})

    @app.get("/services/data/v<version>/sobjects/<name>/<record_id>")
    def read(version: str, name: str, record_id: str) -> Response:
        record, error = live_record(name, record_id)
        if error is not None:
            return error
        assert record is not None
        wanted = [f.strip() for f in request.args.get("fields", "").split(",") if f.strip()] or None
        return json_response(record_json(record, version, wanted))

    @app.patch("/services/data/v<version>/sobjects/<name>/<record_id>")
    def update(version: str, name: str, record_id: str) -> Response:
        fields = request.get_json(silent=True)
        if not isinstance(fields, dict):
            return _fail(400, "Unexpected character: was expecting a JSON object", "JSON_PARSER_ERROR")
        with state.lock:
            record, error = live_record(name, record_id)
            if error is not None:
                return error
            assert record is not None
            error = write_errors(record.sobject, fields, creating=False)
            if error is not None:
                return error
            for key, value in fields.items():
                record.fields[_find_key(record.fields, key) or key] = value
            now = state.clock()
            stamp = sf_datetime(max(now, parse_sf_datetime(record.fields["LastModifiedDate"]) or now))
            record.fields.update(LastModifiedDate=stamp, SystemModstamp=stamp, LastModifiedById=USER_ID)
            state.updates.append(FieldUpdate(record.sobject, record.id, dict(fields), now))
        return Response(status=204)

    @app.delete("/services/data/v<version>/sobjects/<name>/<record_id>")
    def delete(version: str, name: str, record_id: str) -> Response:
        with state.lock:
            record, error = live_record(name, record_id)
            if error is not None:
                return error
            assert record is not None
            record.deleted = True
            record.fields["IsDeleted"] = True
        return Response(status=204)

    @app.get("/services/data/v<version>/query/", strict_slashes=False)
    @app.get("/services/data/v<version>/queryAll/", strict_slashes=False, endpoint="query_all")
    def query(version: str) -> Response:
        include_deleted = request.path.rstrip("/").endswith("/queryAll")
        soql = request.args.get("q")
        if not soql:
            return _fail(400, "A query string has to be specified", "MALFORMED_QUERY")
        try:
            parsed = parse_soql(soql)
        except SoqlError as problem:
            return _fail(400, str(problem), problem.code)
        with state.lock:
            rows = [r for r in state.records[parsed.sobject].values() if include_deleted or not r.deleted]
        try:
            rows = [r for r in rows if parsed.where is None or parsed.where(r)]
        except SoqlError as problem:
            return _fail(400, str(problem), problem.code)
        for name, descending, nulls_last in reversed(parsed.order_by):
            present = [r for r in rows if r.value(name) is not None]
            absent = [r for r in rows if r.value(name) is None]
            present.sort(key=lambda r: _sort_key(r.value(name)), reverse=descending)
            rows = present + absent if nulls_last else absent + present
        rows = rows[parsed.offset:]
        if parsed.limit is not None:
            rows = rows[:parsed.limit]
        records = [record_json(r, version, parsed.fields) for r in rows]
        return query_page(version, records, 0, _batch_size())

    @app.get("/services/data/v<version>/query/<locator>")
    @app.get("/services/data/v<version>/queryAll/<locator>", endpoint="query_all_more")
    def query_more(version: str, locator: str) -> Response:
        key, _, offset = locator.rpartition("-")
        with state.lock:
            records = state._cursors.get(key)
        if records is None or not offset.isdigit():
            return _fail(400, "invalid query locator", "INVALID_QUERY_LOCATOR")
        return query_page(version, records, int(offset), _batch_size(), key)

    def _batch_size() -> int:
        match = re.search(r"batchSize=(\d+)", request.headers.get("Sforce-Query-Options", ""))
        requested = min(max(int(match.group(1)), 200), 2000) if match else 2000
        return max(1, min(requested, state.query_batch_size))

    def query_page(version: str, records: list[dict[str, Any]], start: int, size: int,
                   key: str | None = None) -> Response:
        page = records[start:start + size]
        body: dict[str, Any] = {"totalSize": len(records), "done": start + size >= len(records),
                                "records": page}
        if not body["done"]:
            with state.lock:
                if key is None:
                    key = sf_id("01g", next(state._locators))
                    state._cursors[key] = records
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{key}-{start + size}"
        return json_response(body)

    return app


# -- SOQL subset --------------------------------------------------------------
class SoqlError(Exception):
    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.code = code


_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
    | (?P<op>!=|<>|<=|>=|=|<|>)
    | (?P<punct>[(),])
    )""", re.VERBOSE)


@dataclass
class Soql:
    fields: list[str]
    sobject: str
    where: Callable[[SfRecord], bool] | None
    order_by: list[tuple[str, bool, bool]]
    limit: int | None
    offset: int


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise SoqlError(f"unexpected token at: '{text[position:position + 20]}'")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def parse_soql(text: str) -> Soql:
    """Parse the documented subset; anything else is a MALFORMED_QUERY, never a guess."""
    tokens = _tokenize(text)
    pos = 0

    def peek(offset: int = 0) -> tuple[str, str]:
        return tokens[pos + offset] if pos + offset < len(tokens) else ("eof", "")

    def keyword(*words: str) -> bool:
        nonlocal pos
        if all(peek(i)[0] == "ident" and peek(i)[1].upper() == w for i, w in enumerate(words)):
            pos += len(words)
            return True
        return False

    def expect(kind: str, value: str | None = None) -> str:
        nonlocal pos
        got_kind, got = peek()
        if got_kind != kind or (value is not None and got.upper() != value):
            raise SoqlError(f"unexpected token: '{got or 'end of query'}'")
        pos += 1
        return got

    def field_name() -> str:
        name = expect("ident")
        if "." in name:
            raise SoqlError(f"stand-in limitation: relationship field '{name}' is not supported")
        if name.upper() in {"COUNT", "MAX", "MIN", "SUM", "AVG", "SELECT"} and peek()[1] == "(":
            raise SoqlError("stand-in limitation: aggregates and subqueries are not supported")
        return name

    if not keyword("SELECT"):
        raise SoqlError("unexpected token: query must start with SELECT")
    fields = [field_name()]
    while peek() == ("punct", ","):
        pos += 1
        fields.append(field_name())
    if not keyword("FROM"):
        raise SoqlError(f"unexpected token: '{peek()[1]}'")
    raw_sobject = expect("ident")
    sobject = _canonical_sobject(raw_sobject)
    if sobject is None:
        raise SoqlError(f"sObject type '{raw_sobject}' is not supported. If you are attempting to use a custom "
                        "object, be sure to append the '__c' after the entity name.", "INVALID_TYPE")

    def value() -> tuple[str, Any]:
        nonlocal pos
        kind, raw = peek()
        pos += 1
        if kind == "string":
            return "string", re.sub(r"\\(.)", r"\1", raw[1:-1])
        if kind == "datetime":
            return "datetime", parse_sf_datetime(raw)
        if kind == "date":
            return "date", date.fromisoformat(raw)
        if kind == "number":
            return "number", float(raw)
        if kind == "ident" and raw.lower() in ("true", "false"):
            return "boolean", raw.lower() == "true"
        if kind == "ident" and raw.lower() == "null":
            return "null", None
        raise SoqlError(f"stand-in limitation or bad value: '{raw or 'end of query'}'")

    def condition() -> Callable[[SfRecord], bool]:
        nonlocal pos
        if peek() == ("punct", "("):
            pos += 1
            inner = disjunction()
            expect("punct", ")")
            return inner
        name = field_name()
        negate = keyword("NOT", "IN")
        if negate or keyword("IN"):
            expect("punct", "(")
            options = [value()]
            while peek() == ("punct", ","):
                pos += 1
                options.append(value())
            expect("punct", ")")
            return lambda r: (any(_compare(name, r.value(name), "=", o) for o in options)) != negate
        if keyword("LIKE"):
            kind, pattern = value()
            if kind != "string":
                raise SoqlError("LIKE needs a quoted string")
            regex = re.compile("^" + re.escape(pattern).replace("%", ".*").replace("_", ".") + "$",
                               re.IGNORECASE | re.DOTALL)
            return lambda r: r.value(name) is not None and bool(regex.match(str(r.value(name))))
        comparison = expect("op")
        operand = value()
        if name.lower() in DATETIME_FIELDS and operand[0] == "string":
            raise SoqlError(f"value of filter criterion for field '{name}' must be of type dateTime and should "
                            "not be enclosed in quotes", "INVALID_FIELD")
        return lambda r: _compare(name, r.value(name), comparison, operand)

    def conjunction() -> Callable[[SfRecord], bool]:
        parts = [condition()]
        while keyword("AND"):
            parts.append(condition())
        return lambda r: all(p(r) for p in parts)

    def disjunction() -> Callable[[SfRecord], bool]:
        parts = [conjunction()]
        while keyword("OR"):
            parts.append(conjunction())
        return lambda r: any(p(r) for p in parts)

    where = disjunction() if keyword("WHERE") else None
    order_by: list[tuple[str, bool, bool]] = []
    if keyword("ORDER", "BY"):
        while True:
            name = field_name()
            descending = keyword("DESC")
            if not descending:
                keyword("ASC")
            nulls_last = descending  # SOQL default: NULLS FIRST ascending, NULLS LAST descending
            if keyword("NULLS", "FIRST"):
                nulls_last = False
            elif keyword("NULLS", "LAST"):
                nulls_last = True
            order_by.append((name, descending, nulls_last))
            if peek() != ("punct", ","):
                break
            pos += 1
    limit = int(expect("number")) if keyword("LIMIT") else None
    offset = int(expect("number")) if keyword("OFFSET") else 0
    if pos != len(tokens):
        raise SoqlError(f"unexpected token: '{peek()[1]}'")
    return Soql(fields, sobject, where, order_by, limit, offset)


def _compare(name: str, actual: Any, op: str, operand: tuple[str, Any]) -> bool:
    """SOQL comparison: strings case-insensitive, typed literals compared as their type."""
    kind, wanted = operand
    if kind == "null":
        return (actual is None) == (op == "=") if op in ("=", "!=", "<>") else False
    if actual is None:
        return op in ("!=", "<>")
    if kind == "datetime":
        left: Any = parse_sf_datetime(str(actual))
    elif kind == "date":
        try:
            left = date.fromisoformat(str(actual)[:10])
        except ValueError:
            left = None
    elif kind == "number":
        try:
            left = float(actual)
        except (TypeError, ValueError):
            left = None
    elif kind == "boolean":
        left = actual if isinstance(actual, bool) else str(actual).lower() == "true"
    else:
        left, wanted = str(actual).casefold(), str(wanted).casefold()
    if left is None:
        return False
    return bool(_OPERATORS[op](left, wanted))


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "!=": operator.ne, "<>": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (0, value)
    moment = parse_sf_datetime(str(value))
    if moment is not None:
        return (1, moment.timestamp())
    return (2, str(value).casefold())
