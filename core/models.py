"""The nouns of crmrules: records, events, actions and decisions.

Everything that crosses a seam (receiver → inbox, engine → outbox, outbox → plugin) is one of these
pydantic models, so a plugin author and an admin see the same shapes the core uses.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EntityKind = Literal["lead", "account", "deal"]
ENTITY_KINDS: tuple[str, ...] = ("lead", "account", "deal")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Identity(_Model):
    """One name an entity is known by: an email, a CRM id, a web anonymous id."""

    kind: Annotated[str, Field(min_length=1, max_length=64)]
    value: Annotated[str, Field(min_length=1, max_length=512)]

    @field_validator("value")
    @classmethod
    def _normalise(cls, value: str, info: Any) -> str:
        return value.strip()

    def key(self) -> tuple[str, str]:
        # Emails are case-insensitive in every CRM we talk to; other ids are not.
        if self.kind == "email":
            return (self.kind, self.value.lower())
        return (self.kind, self.value)


class EntityRef(_Model):
    """Who an event is about, by whatever ids the source knows."""

    kind: EntityKind = "lead"
    ids: dict[str, str] = Field(default_factory=dict, validate_default=True)  # `{}` or no ids at all: refused

    @field_validator("ids")
    @classmethod
    def _ids_present(cls, ids: dict[str, str]) -> dict[str, str]:
        cleaned = {k: str(v).strip() for k, v in ids.items() if v is not None and str(v).strip()}
        if not cleaned:
            raise ValueError("an entity reference needs at least one id (email, hubspot_id, anonymous_id, ...)")
        return cleaned

    def identities(self) -> list[Identity]:
        return [Identity(kind=k, value=v) for k, v in sorted(self.ids.items())]


class Record(_Model):
    """What the core knows of one lead, account or deal: its properties, tags and score."""

    id: str
    kind: EntityKind
    properties: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    score: float = 0


class Lead(Record):
    """A person (a CRM contact or lead)."""

    kind: Literal["lead"] = "lead"


class Account(Record):
    """A company."""

    kind: Literal["account"] = "account"


class Deal(Record):
    """An opportunity; `stage` and `amount` live in properties like any other field."""

    kind: Literal["deal"] = "deal"


EARLIEST = dt.datetime(1970, 1, 2, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.timezone.utc)


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError("occurred_at needs a time zone (e.g. 2026-11-02T09:30:00+09:00 or ...Z)")
    if not EARLIEST <= value < LATEST:  # waits and calendars run past the event: year 9999 + 3d is no date
        raise ValueError(f"occurred_at {value.isoformat()} is outside the years 1970 to 9000")
    return value


class Event(_Model):
    """Something that happened to an entity at a point in event time.

    `id` is the source's own id when it has a stable one; the inbox accepts each (source, id) once.
    `properties` of kind `record_update` are property values of the entity itself (a CRM field changed).
    """

    id: Annotated[str, Field(min_length=1, max_length=512)]
    source: Annotated[str, Field(min_length=1, max_length=64)] = "import"
    type: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s]+$")]
    occurred_at: dt.datetime
    subject: EntityRef
    related: list[EntityRef] = Field(default_factory=list)
    properties: dict[str, Any] = Field(default_factory=dict)

    _check_tz = field_validator("occurred_at")(lambda cls, v: _aware(v))

    @model_validator(mode="after")
    def _merge_names_ids(self) -> "Event":
        """A merge's `merged_ids` is read as an entity reference when evaluated: check it here, at the door,
        so that a malformed one is refused instead of stored to fail every evaluation."""

        if self.type == MERGE and "merged_ids" in self.properties:
            try:
                EntityRef(kind=self.subject.kind, ids=self.properties["merged_ids"])
            except ValueError:  # pydantic's ValidationError is one
                raise ValueError("properties.merged_ids names the merged record's ids: a mapping such as "
                                 "{hubspot_id: '101'}") from None
        return self

    def ts(self) -> float:
        return self.occurred_at.timestamp()


RECORD_UPDATE = "record_update"
"""Event type for "these fields of the entity now have these values" (webhooks, pulls, imports)."""

MERGE = "merge"
"""Event type for "these two records are one": properties.merged_ids names the other record's ids."""

CREATED = "created"
DELETED = "deleted"
RESTORED = "restored"
"""Event types adapters use for a record's life cycle (they carry no field values; see RECORD_UPDATE)."""


# ---------------------------------------------------------------- actions

class _Action(_Model):
    after: float | None = Field(default=None, description="delay in seconds before the action is due")


class SetProperty(_Action):
    type: Literal["set"] = "set"
    properties: dict[str, Any]


class AddTag(_Action):
    type: Literal["tag"] = "tag"
    tag: str


class RemoveTag(_Action):
    type: Literal["untag"] = "untag"
    tag: str


class AdjustScore(_Action):
    type: Literal["score"] = "score"
    points: float


class CreateTask(_Action):
    type: Literal["task"] = "task"
    title: str
    body: str = ""
    due_in: float | None = Field(default=None, description="seconds from the decision to the task's due time")
    owner: str | None = None
    priority: Literal["low", "medium", "high"] = "medium"


class SendMessage(_Action):
    type: Literal["message"] = "message"
    channel: str = "email"
    template: str | None = None
    subject: str = ""
    body: str = ""
    advertising: bool = False
    locale: str | None = None


class CallWebhook(_Action):
    type: Literal["webhook"] = "webhook"
    url: str
    payload: dict[str, Any] = Field(default_factory=dict)


class CustomAction(_Action):
    """An action type registered by a plugin (`register_actions`); its fields are the plugin's."""

    type: Literal["custom"] = "custom"
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


Action = Annotated[
    Union[SetProperty, AddTag, RemoveTag, AdjustScore, CreateTask, SendMessage, CallWebhook, CustomAction],
    Field(discriminator="type"),
]

STATE_ACTIONS = ("set", "tag", "untag", "score")

BEHAVIOUR_ACTIONS = ("tag", "untag", "score")
"""Actions that change the entity inside crmrules as well as in the CRM, so later rules see the change."""


class Decision(_Model):
    """One rule's verdict for one entity on one trigger: fired, shadow, or blocked by a guard."""

    id: str
    rule: str
    pack: str
    rule_version: str
    entity_id: str
    entity_kind: EntityKind
    trigger: str = Field(description="event id or timer that caused the evaluation")
    event_ids: list[str] = Field(default_factory=list)
    at: float
    outcome: Literal["fired", "shadow", "blocked"]
    reason: str = ""
    facts: dict[str, Any] = Field(default_factory=dict)
    actions: list[Action] = Field(default_factory=list)


class OutboxItem(_Model):
    """An action ready to push: what, for whom, and the key that makes pushing it twice harmless."""

    idempotency_key: str
    decision_id: str
    rule: str
    entity_id: str
    entity_kind: EntityKind
    identities: dict[str, str] = Field(default_factory=dict)
    action: Action
    due_at: float
    decided_at: float | None = Field(default=None, description="event time of the decision (due_at minus any delay)")
    record: dict[str, Any] = Field(default_factory=dict,
                                   description="the record's tags and score after the decision, for set-style pushes")
    shadow: bool = False


def construct_validated(cls: type[_Model], values: dict[str, Any]) -> Any:
    """An instance of `cls` from values that already have exactly the types validation would give them.

    The decider builds a `Decision` and an `OutboxItem` per fired rule from parts validated before (actions
    at render time, ids from `stable_hash`, floats made floats); validating them again cost more than the
    rest of the record, and `model_construct` does per-field work that is slower still. `values` must hold
    every field, in field order; it becomes the instance's `__dict__`. The fields reported as set are those
    the decider used to pass to the validating constructor (`_FIELDS_SET`)."""

    m = cls.__new__(cls)
    _set = object.__setattr__
    _set(m, "__dict__", values)
    _set(m, "__pydantic_fields_set__", _FIELDS_SET[cls].copy())
    _set(m, "__pydantic_extra__", None)
    _set(m, "__pydantic_private__", None)
    return m


def stable_hash(*parts: Any, length: int = 24) -> str:
    """A short deterministic hash: replays of the same input give the same ids and keys."""

    if all(isinstance(p, (str, int, float)) for p in parts):  # the hot path: ids and indexes
        blob = "\x1f".join(f"{type(p).__name__}:{p}" for p in parts).encode("utf-8")
    else:
        blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:length]


# Fields a validated `Decision(...)`/`OutboxItem(...)` built by the decider reports as set (every keyword it
# passed): `construct_validated` gives its instances the same.
_FIELDS_SET: dict[type, set[str]] = {
    Decision: set(Decision.model_fields),
    OutboxItem: set(OutboxItem.model_fields) - {"record", "shadow"},
}
