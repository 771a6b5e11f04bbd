"""crmrules-chat: a team chat as a target and a source, through its incoming and outgoing webhooks.

- target `chat`: the `chat_notify` action posts to a Slack-compatible incoming webhook
  (`CRMRULES_CHAT_WEBHOOK_URL`), so a rule can tell the team "call this lead now".
- source `chat`: `POST /hooks/chat/events` takes the chat bot's commands (`claimed`, `done`) and turns them into
  events (`chat_claimed`, `chat_done`) about the lead they name, so rules can stop reminding once someone took
  the lead. Every request must carry the shared secret `CRMRULES_CHAT_SECRET`; that check is why the source is
  declared trusted.

The working template of docs/plugins.md: it imports only `crmrules.api` and `crmrules.config`, and is found
through the `crmrules` entry-point group of its pyproject.toml.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any, Literal

import requests
from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crmrules.api import (ActionNotSupported, CustomAction, EntityRef, Event, OutboxItem, PluginContext, PushFailed,
                          RegisterAction, RegisterModel, RegisterSource, RegisterTarget, Rejected, RetryLater, hookimpl,
                          ingest, plugin_context)
from crmrules.config import secret

NAME = "chat"
WEBHOOK_URL_ENV = "CRMRULES_CHAT_WEBHOOK_URL"
SECRET_ENV = "CRMRULES_CHAT_SECRET"
EVENTS_PATH = "/hooks/chat/events"


class ChatNotify(BaseModel):
    """The fields a rule writes under `chat_notify:`; crmrules checks rules against this model."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)
    channel: str | None = None


class ChatSettings(BaseModel):
    """`plugins: {chat: {...}}` in crmrules.yaml; `crmrules check` validates it against this model."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(default=5.0, gt=0, description="seconds to wait for the chat webhook")
    secret_header: str = Field(default="X-Chat-Secret", min_length=1,
                               description="the header the chat bot puts CRMRULES_CHAT_SECRET in")


class ChatCommand(BaseModel):
    """What the chat bot posts to /hooks/chat/events when someone types `/lead claimed kim@example.com`."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, min_length=1, max_length=200,
                           description="the chat's own message id: a redelivered command is stored once")
    command: Literal["claimed", "done"]
    lead: str = Field(min_length=3, max_length=320, description="the lead's email")
    by: str = Field(min_length=1, max_length=200, description="who typed it")
    at: dt.datetime | None = Field(default=None, description="when it was typed (with a zone); default: now")
    note: str = Field(default="", max_length=2000)


# ---------------------------------------------------------------- registration

@hookimpl
def register_settings(register: RegisterModel) -> None:
    register(NAME, ChatSettings)


@hookimpl
def register_actions(register: RegisterAction) -> None:
    register("chat_notify", ChatNotify)


@hookimpl
def register_targets(register: RegisterTarget) -> None:
    register(NAME, push)


@hookimpl
def register_sources(register: RegisterSource) -> None:
    register(NAME, blueprint=blueprint(), trusted=True, openapi=OPENAPI)


# ---------------------------------------------------------------- the target

def push(item: OutboxItem, context: PluginContext[ChatSettings]) -> str:
    """Post one `chat_notify` action; the idempotency key goes along, so the chat can drop a repeat."""

    action = item.action
    if not isinstance(action, CustomAction) or action.name != "chat_notify":
        raise ActionNotSupported(f"the chat plugin only sends chat_notify, not {action.type}")
    if item.shadow:
        return "shadow: not sent"
    url = secret(WEBHOOK_URL_ENV)
    if not url:
        raise PushFailed(f"set {WEBHOOK_URL_ENV} to the incoming-webhook URL")
    message = ChatNotify.model_validate(action.params)
    body = {"text": message.text, **({"channel": message.channel} if message.channel else {})}
    try:
        response = requests.post(url, json=body, timeout=context.options.timeout,
                                 headers={"Idempotency-Key": item.idempotency_key})
    except requests.RequestException as exc:
        raise RetryLater(f"chat webhook unreachable: {exc}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        retry_after = response.headers.get("Retry-After")
        raise RetryLater(f"chat webhook answered {response.status_code}",
                         float(retry_after) if retry_after and retry_after.isdigit() else None)
    if response.status_code >= 400:
        raise PushFailed(f"chat webhook refused the message: {response.status_code} {response.text[:200]}")
    context.metrics.counter("messages_sent", "chat_notify messages the chat accepted").inc()
    return f"chat {response.status_code}"


# ---------------------------------------------------------------- the source

def blueprint() -> Blueprint:
    bp = Blueprint(NAME, __name__)
    bp.add_url_rule(EVENTS_PATH, "events", receive, methods=["POST"])
    return bp


def receive() -> Response:
    """A chat command about a lead: verify the shared secret, store it as an event, answer."""

    context: PluginContext[ChatSettings] = plugin_context(NAME)
    expected = secret(SECRET_ENV)
    if not expected:
        context.logger.error("%s is not set: every chat command is refused", SECRET_ENV)
        raise Rejected(503, f"{SECRET_ENV} is not configured")
    given = request.headers.get(context.options.secret_header, "")
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):  # constant time
        raise Rejected(401, f"missing or wrong {context.options.secret_header}")
    try:
        command = ChatCommand.model_validate(request.get_json(force=True))
    except ValidationError as exc:
        raise Rejected(400, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    new = ingest([to_event(command, dt.datetime.now(dt.timezone.utc))])
    return jsonify({"accepted": sum(new), "duplicates": len(new) - sum(new)})


def to_event(command: ChatCommand, received: dt.datetime) -> Event:
    """`claimed` → `chat_claimed` about the lead with that email; its id is the chat's, or the command's hash."""

    at = command.at or received
    if at.tzinfo is None:
        raise Rejected(400, "at: needs a time zone (e.g. 2026-03-02T09:10:00+09:00)")
    key = command.id or hashlib.sha256(json.dumps(command.model_dump(mode="json"), sort_keys=True,
                                                  ensure_ascii=False).encode("utf-8")).hexdigest()[:32]
    return Event(id=f"chat:{key}", source=NAME, type=f"chat_{command.command}", occurred_at=at,
                 subject=EntityRef(kind="lead", ids={"email": command.lead}),
                 properties={"lead": command.lead, "by": command.by, "note": command.note})


OPENAPI: dict[str, Any] = {
    "paths": {EVENTS_PATH: {"post": {
        "summary": "A chat command about a lead (claimed, done), stored as the event chat_claimed or chat_done",
        "operationId": "chat_command", "tags": [NAME],
        "parameters": [{"name": "X-Chat-Secret", "in": "header", "required": True, "schema": {"type": "string"},
                        "description": "CRMRULES_CHAT_SECRET (the header is plugins.chat.secret_header)"}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ChatCommand"}}}},
        "responses": {
            "200": {"description": "stored (or stored before: a redelivery)", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"accepted": {"type": "integer"},
                                                            "duplicates": {"type": "integer"}}}}}},
            "400": {"description": "not a command; nothing was stored"},
            "401": {"description": "missing or wrong secret; nothing was stored"},
            "503": {"description": "CRMRULES_CHAT_SECRET is not configured"}}}}},
    "components": {"schemas": {"ChatCommand": ChatCommand.model_json_schema()}},
}
