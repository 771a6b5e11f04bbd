"""What a plugin imports: the hook marker, the models, the types of what it registers, and the few calls and
errors of the core.

Everything here is the public plugin API; the in-repo adapters use nothing else (and `crmrules.config.secret`).
docs/plugins.md is the guide to it.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, Protocol, Sequence, TypeVar

import pluggy
from flask import Blueprint, current_app
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, ValidationError

from .actions import ActionType
from .models import (CREATED, DELETED, MERGE, RECORD_UPDATE, RESTORED, Action, AddTag, AdjustScore, CallWebhook,
                     CreateTask, CustomAction, EntityRef, Event, OutboxItem, RemoveTag, SendMessage, SetProperty)

hookimpl = pluggy.HookimplMarker("crmrules")
"""Mark the functions of your plugin module that implement a hook of `crmrules.hookspecs`."""

OptionsT = TypeVar("OptionsT")
ModelT = TypeVar("ModelT", bound=BaseModel)


# ---------------------------------------------------------------- errors

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
    """What one pull returns: events in event-time order, the cursor to hand back next time, more pages waiting."""

    events: list[Event]
    cursor: str | None = None
    more: bool = False


# ---------------------------------------------------------------- the context a plugin is handed

class Clock(Protocol):
    """The deployment's clock: wall-clock time when serving, event time in a replay or a test."""

    def now(self) -> float: ...


_METRIC_CHARS = re.compile(r"[^a-zA-Z0-9_]")


class PluginMetrics:
    """A plugin's own counters and gauges, on the registry the sidecar's /metrics exposes.

    Named `crmrules_<plugin>_<name>` so two plugins never clash; asking twice for one name returns the same
    metric (prometheus_client refuses a second registration)."""

    def __init__(self, plugin: str, registry: CollectorRegistry | None = None):
        self.prefix = f"crmrules_{_METRIC_CHARS.sub('_', plugin)}_"
        self.registry = registry if registry is not None else CollectorRegistry()
        self._made: dict[str, Counter | Gauge] = {}
        self._lock = threading.Lock()

    def counter(self, name: str, description: str, labels: Sequence[str] = ()) -> Counter:
        """A counter (exposed as `crmrules_<plugin>_<name>_total`): `.inc()`, or `.labels(...).inc()`."""

        made = self._get(name, lambda full: Counter(full, description, list(labels), registry=self.registry))
        if not isinstance(made, Counter):
            raise ValueError(f"metric {name!r} of this plugin is a gauge, not a counter")
        return made

    def gauge(self, name: str, description: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge: `.set(value)`, `.inc()`, `.dec()`, or the same on `.labels(...)`."""

        made = self._get(name, lambda full: Gauge(full, description, list(labels), registry=self.registry))
        if not isinstance(made, Gauge):
            raise ValueError(f"metric {name!r} of this plugin is a counter, not a gauge")
        return made

    def _get(self, name: str, make: Callable[[str], Counter | Gauge]) -> Counter | Gauge:
        with self._lock:
            if name not in self._made:
                self._made[name] = make(self.prefix + _METRIC_CHARS.sub("_", name))
            return self._made[name]


@dataclass(frozen=True)
class PluginContext(Generic[OptionsT]):
    """What the core hands a plugin's push, pull and views: its own options, folder, metrics, clock and logger.

    Built once per plugin per deployment load, so it is cheap to ask for in every request."""

    name: str
    """The plugin's name: its section `plugins.<name>` of crmrules.yaml."""
    options: OptionsT
    """That section validated against the model the plugin declared (`register_settings`); None if it has none."""
    data_dir: Path
    """A folder for the plugin's own files (beside the store by default), created when the context is built."""
    metrics: PluginMetrics
    clock: Clock
    logger: logging.Logger
    """`crmrules.plugins.<name>`: its records go through the sidecar's log, PII masked."""


Pusher = Callable[[OutboxItem, "PluginContext[Any]"], str]
"""`push(item, context) -> result`: apply one outbox item to the target; see `hookspecs.register_targets`."""

Puller = Callable[[str | None, "PluginContext[Any]"], PullResult]
"""`pull(since, context) -> PullResult`: records and events changed since a cursor; see `register_sources`."""


class RegisterSource(Protocol):
    def __call__(self, name: str, *, blueprint: Blueprint | None = None, pull: Puller | None = None,
                 trusted: bool = False, openapi: Mapping[str, Any] | None = None) -> None: ...


class RegisterTarget(Protocol):
    def __call__(self, name: str, push: Pusher) -> None: ...


class RegisterModel(Protocol):
    """`register(name, model)` of `register_actions` and `register_settings`."""

    def __call__(self, name: str, model: type[BaseModel]) -> None: ...


class RegisterAction(Protocol):
    """`register(name, model)` of `register_actions`: a pydantic model of the fields (the core's own built-in
    types register a whole `crmrules.actions.ActionType` through the same call)."""

    def __call__(self, name: str, model: type[BaseModel] | ActionType) -> None: ...


class RegisterCondition(Protocol):
    def __call__(self, name: str, function: Callable[[Any, Any], bool]) -> None: ...


class Contexts(Protocol):
    """Where the receiver finds plugin contexts (`crmrules.plugins.PluginContexts`)."""

    def get(self, name: str) -> PluginContext[Any]: ...


# ---------------------------------------------------------------- inside the receiver

@dataclass
class Runtime:
    """What the receiver knows, handed to views through the Flask app."""

    ingest: Callable[[list[Event]], list[bool]]
    settings: dict[str, Any] = field(default_factory=dict)
    store: Any = None
    metrics: Any = None
    contexts: Contexts | None = None
    sources: frozenset[str] | None = None
    """Registered source names; `ingest` refuses an event of any other source (None: not checked)."""


def runtime() -> Runtime:
    found = current_app.extensions["crmrules"]
    if not isinstance(found, Runtime):
        raise RuntimeError("this Flask app is not a crmrules receiver (crmrules.receiver.create_app builds one)")
    return found


def ingest(events: list[Event]) -> list[bool]:
    """Durably accept events before answering the request; returns which were new (False = redelivery).

    Every event's `source` must be a source some plugin registered: its trust is what that plugin declared."""

    current = runtime()
    if current.sources is not None:
        for event in events:
            if event.source not in current.sources:
                raise ValueError(f"event {event.id!r}: source {event.source!r} is not registered by any plugin "
                                 f"(registered: {', '.join(sorted(current.sources)) or 'none'}); register it "
                                 "with register_sources")
    return current.ingest(events)


def plugin_context(name: str) -> PluginContext[Any]:
    """Your plugin's context inside a request (views); a ValueError naming each bad key if its options are bad."""

    contexts = runtime().contexts
    if contexts is None:
        raise RuntimeError("this receiver has no plugin contexts (crmrules.receiver.create_app gives it some)")
    return contexts.get(name)


def validate_settings(name: str, model: type[ModelT], section: Any) -> ModelT:
    """`plugins.<name>` validated against `model`; a ValueError with one line per problem, each naming its key.

    The one wording of settings errors, for `crmrules check` and for a plugin context's options."""

    try:
        return model.model_validate(section or {})
    except ValidationError as exc:
        raise ValueError("\n".join(_problem(name, model, e) for e in exc.errors())) from None


def _problem(name: str, model: type[BaseModel], error: Mapping[str, Any]) -> str:
    where = ".".join(["plugins", name, *map(str, error["loc"])])
    if error["type"] != "extra_forbidden":
        return f"{where}: {error['msg']}"
    close = difflib.get_close_matches(str(error["loc"][-1]), list(model.model_fields), n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"the options are: {', '.join(model.model_fields)}"
    return f"{where}: not an option of the {name} plugin; {hint}"


__all__ = [
    "CREATED", "DELETED", "RESTORED", "Action", "ActionNotSupported", "AddTag", "AdjustScore", "CallWebhook",
    "Clock", "Contexts", "CreateTask", "CustomAction", "EntityRef", "Event", "MERGE", "OutboxItem", "PluginContext",
    "PluginMetrics", "PullResult", "Puller", "PushFailed", "Pusher", "RECORD_UPDATE", "RegisterCondition",
    "RegisterAction", "RegisterModel", "RegisterSource", "RegisterTarget", "Rejected", "RemoveTag", "RetryLater", "Runtime",
    "SendMessage", "SetProperty", "hookimpl", "ingest", "plugin_context", "runtime", "validate_settings",
]
