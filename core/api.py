"""What a plugin imports: the hook marker, the models, and the few calls and errors of the core.

Everything here is the public plugin API; the in-repo adapters use nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from .hookspecs import hookimpl
from .models import (CREATED, DELETED, MERGE, RECORD_UPDATE, RESTORED, Action, AddTag, AdjustScore, CallWebhook,
                     CreateTask, CustomAction, EntityRef, Event, OutboxItem, RemoveTag, SendMessage, SetProperty)


class Rejected(Exception):
    """Raise from a webhook view: the request is answered with `status` and `reason` and nothing is stored."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class RetryLater(Exception):
    """A passing failure (throttled, 5xx, timeout): the dispatcher retries, after `retry_after` seconds if given."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class PushFailed(Exception):
    """A failure retrying cannot fix (bad data, missing record): the action goes to the dead letters at once."""


class ActionNotSupported(PushFailed):
    """The plugin received an action type it cannot apply to its target."""


@dataclass
class PullResult:
    events: list[Event]
    cursor: str | None = None
    more: bool = False


@dataclass
class Runtime:
    """What the receiver knows, handed to views through the Flask app."""

    ingest: Any
    settings: dict[str, Any] = field(default_factory=dict)
    store: Any = None
    metrics: Any = None


def runtime() -> Runtime:
    return current_app.extensions["crmrules"]


def ingest(events: list[Event]) -> list[bool]:
    """Durably accept events before answering the request; returns which were new (False = redelivery)."""

    return runtime().ingest(events)


def validate_settings(name: str, model: Any, section: Any) -> Any:
    """Your section `plugins.<name>` as `model`, or a ValueError naming each bad key (as `crmrules check` does)."""

    from .plugins import validate_settings as validate

    return validate(name, model, section)


def plugin_settings(name: str) -> dict[str, Any]:
    return dict(runtime().settings.get("plugins", {}).get(name, {}))


__all__ = [
    "CREATED", "DELETED", "RESTORED", "Action", "ActionNotSupported", "AddTag", "AdjustScore", "CallWebhook", "CreateTask", "CustomAction",
    "EntityRef", "Event", "MERGE", "OutboxItem", "PullResult", "PushFailed", "RECORD_UPDATE", "Rejected",
    "RemoveTag", "RetryLater", "Runtime", "SendMessage", "SetProperty", "hookimpl", "ingest", "plugin_settings",
    "runtime", "validate_settings",
]
