"""What one evaluation reads: the `Trigger` (an event, or a timer that came due) and the `Context` (the entity
and the records around it). Built by the pipeline, read by every module of the decide stage."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .state import EntityState
from .trust import UNJUDGED, Trust


@dataclass
class Trigger:
    """What an evaluation is about: an event, or a timer that came due."""

    kind: str  # "event" | "timer"
    id: str
    ts: float
    etype: str | None = None
    props: dict[str, Any] = field(default_factory=dict)
    rule_key: str | None = None
    leaf: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    event_ts: float | None = None  # when the event happened, if it arrived late (ts is then the entity's "now")
    # The trust verdict, judged once by the pipeline (see trust.py); the only thing here that says what this
    # trigger may unlock.
    trust: Trust = UNJUDGED

    @property
    def happened_at(self) -> float:
        return self.ts if self.event_ts is None else self.event_ts

    @property
    def anchor(self) -> dict[str, Any] | None:
        """For a timer: the event that set it ({type, id, at, props, trusted}), carried in its payload."""

        return self.payload.get("event") if self.kind == "timer" else None

    def seen_by(self, rule_key: str) -> "Trigger":
        """What one rule sees of this trigger: a timer shows the rule that set it the event that set it, as if
        that event were being evaluated (type and properties for `event:` conditions, templates, `per:`)."""

        anchor = self.anchor
        if not anchor or rule_key != self.rule_key:
            return self
        return replace(self, etype=anchor.get("type"), props=dict(anchor.get("props") or {}))

    def anchor_payload(self) -> dict[str, Any] | None:
        """This trigger's event, to carry in the payload of a timer it sets (a timer passes its own on); its
        `trusted` is what `TrustPolicy.of_timer` reads when that timer comes due."""

        if self.kind == "timer":
            return self.anchor
        return {"type": self.etype, "id": self.id, "at": self.happened_at, "props": dict(self.props),
                "trusted": self.trust.privileged}


@dataclass
class Context:
    """The entity being evaluated and the records around it (its account, its deal, the event's lead)."""

    subject: EntityState
    related: dict[str, EntityState] = field(default_factory=dict)

    def state(self, scope: str) -> EntityState | None:
        if scope == self.subject.kind:
            return self.subject
        return self.related.get(scope)
