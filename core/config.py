"""A deployment's own settings (crmrules.yaml): where the store is, which packs run with which variables,
where each action type is pushed, and plugin options. Secrets never live here: only names of
environment variables or files that hold them.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from . import shipped
from .language.durations import parse_duration
from .language.errors import VarsOrigin
from .language.yamlmarks import MAX_BYTES, MarkedDict, YamlProblem, load_marked
from .times import display_zone, zone_named

DEFAULT_CONFIG = "crmrules.yaml"


REDELIVERY_WINDOW = 3 * 86400.0
"""The longest a known source redelivers an event (HubSpot retries webhooks for up to 3 days, Salesforce
outbound messages for 24 h): the inbox's (source, id) key must outlive it, or a retry is evaluated twice."""


class Retention(BaseModel):
    """How long the store keeps what only the audit trail and `explain` read (`retention:` in crmrules.yaml).

    Durations are written as in the rule language (30d, 12w, 1y); `null` keeps that kind of row forever.
    Rows something still needs are never pruned: pending or rejected events, pending/sending/dead actions,
    timers, entities and their identities, and the decisions of actions still waiting.
    """

    model_config = ConfigDict(extra="forbid")

    events: float | None = Field(30 * 86400.0, description="payload of evaluated events (what `explain` lists)")
    event_keys: float | None = Field(90 * 86400.0, description="(source, id) of evaluated events: redelivery "
                                     "dedup; kept at least as long as the payload and never under 3d")
    decisions: float | None = Field(365 * 86400.0, description="decision records (the audit trail), by decision time")
    outbox: float | None = Field(90 * 86400.0, description="sent and cancelled actions (and their idempotency keys)")
    every: float = Field(3600.0, description="how often the sidecar's worker prunes")
    batch: int = Field(500, ge=1, le=100_000, description="rows per transaction, so receivers never wait long")

    @field_validator("events", "event_keys", "decisions", "outbox", "every", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if value is None:
            return None
        duration = parse_duration(value)  # ValueError → a located settings error
        if duration.business_hours:
            raise ValueError(f"{duration.text!r} counts business hours; retention is calendar time (e.g. 30d)")
        return float(duration)

    @model_validator(mode="after")
    def _keys_outlive_redelivery(self) -> "Retention":
        if self.event_keys is not None and self.event_keys < REDELIVERY_WINDOW:
            raise ValueError("event_keys must be at least 3d: HubSpot redelivers webhooks for up to 3 days, and a "
                             "redelivered event whose key is gone would be evaluated again")
        if self.every <= 0:
            raise ValueError("every must be more than 0s")
        return self

    @property
    def key_horizon(self) -> float | None:
        """How long an evaluated event's key is really kept: never less than its payload."""

        if self.event_keys is None or self.events is None:
            return None
        return max(self.event_keys, self.events)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    store: str = "crmrules.sqlite"
    rules: list[str] = Field(default_factory=lambda: ["rules"])
    vars: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-pack variable overrides")
    targets: dict[str, str] = Field(default_factory=dict,
                                    description="action type (or `default`) → plugin that pushes it")
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    max_body_bytes: int = 1_000_000
    max_attempts: int = 8
    retention: Retention = Field(default_factory=Retention)
    timezone: str | None = Field(None, description="the zone every printed time is shown in (explain, outbox list, "
                                 "run, test, demo); unset: the one zone the packs name (Asia/Seoul for the shipped "
                                 "packs), else UTC")
    _vars_file: str | None = PrivateAttr(default=None)
    _embedded: bool = PrivateAttr(default=False)
    _vars_marks: tuple[dict, dict] = PrivateAttr(default_factory=lambda: ({}, {}))
    _target_marks: dict[str, tuple[int, int]] = PrivateAttr(default_factory=dict)

    def target_problems(self, known: Iterable[str], action_types: Iterable[str]) -> list[str]:
        """`targets:` entries naming no loaded target, or no action type, each at its line with a did-you-mean:
        a misspelt target would leave every action of that type waiting as a dead letter."""

        if self._embedded:  # the embedded default routes on-site messages whether or not the tracker is loaded
            return []
        names, kinds = sorted(known), sorted({*action_types, "default"})
        where = self._vars_file or DEFAULT_CONFIG
        problems = []
        for key, target in self.targets.items():
            line, col = self._target_marks.get(key, (0, 0))
            at = f"{where}:{line}:{col}: " if line else f"{where}: "
            kind = key.split(".", 1)[0]
            if kind not in kinds:
                close = difflib.get_close_matches(kind, kinds, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"action types: {', '.join(kinds)}"
                problems.append(f"{at}targets.{key}: no action type {kind!r}; {hint}")
            if target not in names:
                close = difflib.get_close_matches(target, names, n=1)
                hint = (f"did you mean {close[0]!r}?" if close else
                        f"loaded targets: {', '.join(names) or 'none'} (is its plugin installed?)")
                problems.append(f"{at}targets.{key}: no target {target!r} is loaded; {hint}")
        return problems

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            zone_named(value)  # ValueError → a located settings error
        return value

    def display_zone(self, packs: Any = ()) -> Any:
        """The zone printed times are shown in (core/times.py): `timezone`, else the packs' own, else UTC."""

        return display_zone(self.timezone, packs)

    def vars_origin(self, complete: bool = True) -> VarsOrigin | None:
        """Where `vars:` was written, for errors in it; None for settings not read from a file."""

        if self._vars_file is None:
            return None
        return VarsOrigin(self._vars_file, self._vars_marks[0], self._vars_marks[1], complete)

    @property
    def embedded(self) -> bool:
        """True for the embedded default (no crmrules.yaml anywhere): `crmrules serve` then says what it runs."""

        return self._embedded

    def target_for(self, action_type: str, channel: str | None = None) -> str | None:
        for key in (f"{action_type}.{channel}" if channel else None, action_type, "default"):
            if key and key in self.targets:
                return self.targets[key]
        return None


def load_settings(path: str | None = None) -> Settings:
    """Settings from a file (or $CRMRULES_CONFIG, or ./crmrules.yaml if present), else defaults."""

    path = path or os.environ.get("CRMRULES_CONFIG")
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    if path is None:
        return embedded_settings()
    try:
        if Path(path).stat().st_size > MAX_BYTES:
            raise SystemExit(f"{path}: the file is over {MAX_BYTES / 1e6:g} MB")
        text = Path(path).read_text(encoding="utf-8")
        marked = load_marked(text)  # first: bounded (size, depth, aliases) and with every value's place
        data = yaml.safe_load(text) or {}
        if isinstance(marked, MarkedDict) and isinstance(marked.get("vars"), dict) and isinstance(data, dict):
            data["vars"] = marked["vars"]  # read as packs are, so an override means what it would in the pack
        settings = Settings.model_validate(data)
    except YamlProblem as exc:
        raise SystemExit(f"{path}:{exc.line}:{exc.column}: cannot read settings: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{mark.line + 1}:{mark.column + 1}: " if mark else ""
        raise SystemExit(f"{path}:{at}cannot read settings: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"{path}: cannot read settings: {exc}") from None
    except ValidationError as exc:
        lines = [f"{path}:{_located(marked, e)}{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise SystemExit("\n".join(lines)) from None
    if isinstance(marked, MarkedDict) and isinstance(marked.get("targets"), MarkedDict):
        section = marked["targets"]
        settings._target_marks = {str(k): section.value_marks[k] for k in section}
    settings._vars_file = path
    if isinstance(marked, MarkedDict) and isinstance(marked.get("vars"), MarkedDict):
        settings._vars_marks = _var_marks(marked["vars"])
    base = Path(path).parent
    settings.store = _beside(base, settings.store)
    try:
        settings.rules = [found for entry in settings.rules for found in _rule_paths(base, entry)]
    except ValueError as exc:
        raise SystemExit(f"{path}: rules: {exc}") from None
    return settings


EMBEDDED_TARGETS = {"message.onsite": "web_tracker"}
"""What the embedded default pushes: on-site messages, to the web tracker in this process. Every other target
needs a CRM's secrets, so nothing else is routed: those actions wait as dead letters until `targets:` says where
they go (`crmrules outbox retry` sends them then)."""


def embedded_settings() -> Settings:
    """The deployment used when there is no crmrules.yaml: the packs in ./rules if that folder exists (a clone,
    or packs of one's own), else the shipped packs; the store ./crmrules.sqlite; on-site messages only.

    `crmrules serve` adds the web tracker's development write key (kept in the store) and says all this."""

    rules = ["rules"] if Path("rules").is_dir() else [str(shipped.packs_folder())]
    settings = Settings(rules=rules, targets=dict(EMBEDDED_TARGETS))
    settings._embedded = True
    return settings


def _rule_paths(base: Path, entry: str) -> list[str]:
    """One `rules:` entry → pack paths: `shipped:<name or pattern>` names packs installed with crmrules."""

    if entry.startswith(shipped.PREFIX):
        return shipped.resolve(entry)
    return [_beside(base, entry)]


def _located(marked: Any, error: Any) -> str:
    """`line:col: ` of a settings error's place (its key for an unknown key, else its value), or ""."""

    node, mark = marked, None
    for step in error.get("loc", ()):
        if not isinstance(node, MarkedDict) or step not in node:
            break
        extra = error.get("type") == "extra_forbidden"
        mark = node.key_marks.get(step) if extra else node.value_marks.get(step)
        node = node[step]
    return f"{mark[0]}:{mark[1]}: " if mark else ""


def _var_marks(section: MarkedDict) -> tuple[dict, dict]:
    """(pack,) and (pack, name) → line and column of the key; (pack, name) → of the value."""

    keys: dict[tuple[str, ...], tuple[int, int]] = {}
    values: dict[tuple[str, str], tuple[int, int]] = {}
    for pack, names in section.items():
        keys[(str(pack),)] = section.key_marks[pack]
        if isinstance(names, MarkedDict):
            for name in names:
                keys[(str(pack), str(name))] = names.key_marks[name]
                values[(str(pack), str(name))] = names.value_marks[name]
    return keys, values


def _beside(base: Path, path: str) -> str:
    """Paths in the file are relative to the file, shown without `..` detours (error messages name them)."""

    return path if Path(path).is_absolute() or "://" in path else os.path.normpath(base / path)


def secret(name: str) -> str | None:
    """A secret from the environment, or from the file named by NAME_FILE (Docker/Kubernetes secrets)."""

    value = os.environ.get(name)
    if value:
        return value
    file = os.environ.get(f"{name}_FILE")
    if file and Path(file).is_file():
        return Path(file).read_text(encoding="utf-8").strip()
    return None
