"""crmrules-chat: tell a team channel when a rule fires, through a Slack-compatible incoming webhook."""

from __future__ import annotations

from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field

from crmrules.api import ActionNotSupported, PushFailed, RetryLater, hookimpl
from crmrules.config import secret


class ChatNotify(BaseModel):
    """The fields a rule writes under `chat_notify:`; crmrules checks rules against this model."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)
    channel: str | None = None


class ChatSettings(BaseModel):
    """`plugins: {chat: {...}}` in crmrules.yaml; `crmrules check` validates it against this model."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(default=5.0, gt=0, description="seconds to wait for the chat webhook")


@hookimpl
def register_settings(register):
    register("chat", ChatSettings)


@hookimpl
def register_actions(register):
    register("chat_notify", ChatNotify)


@hookimpl
def push_action(target: str, item: Any, settings: dict[str, Any]):
    if target != "chat":
        return None
    action = item.action
    if action.type != "custom" or action.name != "chat_notify":
        raise ActionNotSupported(f"the chat plugin only sends chat_notify, not {action.type}")
    url = secret("CRMRULES_CHAT_WEBHOOK_URL")
    if not url:
        raise PushFailed("set CRMRULES_CHAT_WEBHOOK_URL to the incoming-webhook URL")
    message = ChatNotify.model_validate(action.params)
    body = {"text": message.text, **({"channel": message.channel} if message.channel else {})}
    try:
        response = requests.post(url, json=body, timeout=float(settings.get("timeout", 5)),
                                 headers={"Idempotency-Key": item.idempotency_key})
    except requests.RequestException as exc:
        raise RetryLater(f"chat webhook unreachable: {exc}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        retry_after = response.headers.get("Retry-After")
        raise RetryLater(f"chat webhook answered {response.status_code}",
                         float(retry_after) if retry_after and retry_after.isdigit() else None)
    if response.status_code >= 400:
        raise PushFailed(f"chat webhook refused the message: {response.status_code} {response.text[:200]}")
    return f"chat {response.status_code}"
