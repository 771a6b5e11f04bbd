"""A test-only crmrules plugin, loaded with CRMRULES_PLUGINS_PATH=<this file>.

It is as small as a real adapter can be, and uses only what a real one may:
- source `testhook` (trusted: checked by an `X-Test-Key` header) mounts a JSON webhook (`POST /hooks/test`),
  and its pull pages through `plugins.testhook.pull` (a list of events), one per call;
- target `testhook` posts each action as JSON to `plugins.testhook.url`, mapping the answer the way the real
  adapters do: 2xx sent, 429 and 5xx RetryLater (honouring Retry-After), other 4xx PushFailed.

Settings (`plugins.testhook` in crmrules.yaml): key, url, pull, poll_every.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from typing import Any

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ConfigDict

from crmrules.api import (ActionNotSupported, Event, OutboxItem, PluginContext, PullResult, PushFailed,
                          RegisterModel, RegisterSource, RegisterTarget, Rejected, RetryLater, hookimpl, ingest,
                          plugin_context)

NAME = "testhook"
SUPPORTED = ("task", "tag", "untag", "score", "set", "webhook")


class TesthookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str | None = None
    url: str | None = None
    pull: list[dict[str, Any]] = []
    poll_every: str | float | None = None


def _event(raw: dict[str, Any]) -> Event:
    at = raw.get("at") or dt.datetime.now(dt.timezone.utc).isoformat()
    return Event(id=str(raw["id"]), source=NAME, type=raw.get("type", "signup"), occurred_at=at,
                 subject={"kind": "lead", "ids": {"email": raw.get("email", "kim@example.com")}},
                 properties=raw.get("props") or {})


OPENAPI = {"/hooks/test": {"post": {
    "summary": "Test events, as {\"events\": [{id, type, email, at, props}]}",
    "operationId": "testhook_events",
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
    "responses": {"200": {"description": "accepted (or already seen)"},
                  "401": {"description": "wrong X-Test-Key"}}}}}


def make_blueprint() -> Blueprint:
    bp = Blueprint(NAME, __name__)

    @bp.post("/hooks/test")
    def events() -> Any:
        """Accept test events."""

        options: TesthookSettings = plugin_context(NAME).options
        if request.headers.get("X-Test-Key") != options.key:
            raise Rejected(401, "wrong or missing X-Test-Key")
        body = request.get_json(force=True)
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise Rejected(400, "send {\"events\": [...]}")
        accepted = ingest([_event(e) for e in body["events"]])
        return jsonify({"accepted": sum(accepted), "duplicates": len(accepted) - sum(accepted)})

    @bp.post("/hooks/test/boom")
    def boom() -> Any:
        """Fail like a plugin bug whose message quotes personal data."""

        raise RuntimeError("secret internals: cannot parse kim.yujin@example.com / +82 10-1234-5678")

    @bp.post("/hooks/test/unavailable")
    def unavailable() -> Any:
        """Fail like a full disk."""

        from crmrules.store import StoreUnavailable

        raise StoreUnavailable("database or disk is full")

    return bp


@hookimpl
def register_settings(register: RegisterModel) -> None:
    register(NAME, TesthookSettings)


@hookimpl
def register_sources(register: RegisterSource) -> None:
    register(NAME, blueprint=make_blueprint(), pull=pull, trusted=True, openapi=OPENAPI)


@hookimpl
def register_targets(register: RegisterTarget) -> None:
    register(NAME, push)


def push(item: OutboxItem, context: PluginContext[TesthookSettings]) -> str:
    if item.action.type not in SUPPORTED:
        raise ActionNotSupported(f"testhook cannot push {item.action.type}")
    body = json.dumps({"key": item.idempotency_key, "rule": item.rule, "entity": item.entity_id,
                       "identities": item.identities, "action": item.action.model_dump()},
                      ensure_ascii=False).encode("utf-8")
    if context.options.url is None:  # a bug of the deployment the dispatcher cannot recognise: retried
        raise LookupError("plugins.testhook.url is not set")
    req = urllib.request.Request(context.options.url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Idempotency-Key": item.idempotency_key})
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return f"pushed {response.status} {response.read().decode('utf-8', 'replace')[:80]}".strip()
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace")[:200]
        if exc.code == 429:
            after = exc.headers.get("Retry-After")
            raise RetryLater(f"throttled: {text}", retry_after=float(after) if after else None) from None
        if exc.code >= 500:
            raise RetryLater(f"target answered {exc.code}: {text}") from None
        raise PushFailed(f"target refused it ({exc.code}): {text}") from None
    except urllib.error.URLError as exc:
        raise RetryLater(f"cannot reach the target: {exc.reason}") from None


def pull(since: str | None, context: PluginContext[TesthookSettings]) -> PullResult:
    rows = context.options.pull
    start = int(since or 0)
    if start >= len(rows):
        return PullResult(events=[], cursor=since)
    return PullResult(events=[_event(rows[start])], cursor=str(start + 1), more=start + 1 < len(rows))
