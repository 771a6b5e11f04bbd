"""The trust verdict: may this evaluation unlock privileged actions (CRM writes, tasks, email, webhooks)?

Tracker write keys are public, so anyone can post any id. Trust is therefore decided once per event and once per
timer, here, and carried on the `Trigger` as a `Trust`; the pipeline reads it to pick how identities resolve
and which fields an event may change, the evaluator to drop the actions it does not allow. Nothing else asks
where an event came from.

- An event of a trusted source vouches for every id it names and may do anything.
- An event of an untrusted source is privileged only when it came by a visitor id that a trusted source linked to
  this entity (`vouched`) and the entity itself was vouched for. On a trusted lead by an id no trusted source
  vouched for it is a *guest*: it counts as behaviour but changes none of the lead's fields or ids.
- A timer keeps the trust of the event that set it (carried as `trusted` in its anchor), and is privileged only
  while the entity is trusted too; a timer whose anchor carries none (a date or quiet timer: they come due by
  themselves, not because of an event) has the entity's.
- Without the privilege an evaluation may only tag, score and show on-site messages (`Trust.allows`).

Which sources are trusted is the `TrustPolicy`'s one question (`source_trusted`): exactly those whose plugin
declared them trusted when it registered them (`register(name, ..., trusted=True)`; the core's own `import` and
`test`). Any other source — a third party's public collector, a misspelt name, a plugin that is not loaded — is
untrusted, whatever it is called: trust fails closed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from ..models import BEHAVIOUR_ACTIONS, Action


@dataclass(frozen=True)
class Trust:
    """The verdict for one evaluation; built by `TrustPolicy`, read everywhere else."""

    privileged: bool  # may unlock CRM writes, tasks, email, webhooks
    source: bool = False  # an event of a trusted source: it vouches for its ids, may merge and set fields
    guest: bool = False  # an untrusted event on a trusted lead by an id no trusted source vouched for
    entity: bool = False  # the entity was vouched for by a trusted source (for the wording of a refusal)

    def allows(self, action: Action) -> bool:
        """Whether this evaluation may take `action`: with the privilege anything, else behaviour and on-site."""

        if self.privileged or action.type in BEHAVIOUR_ACTIONS:
            return True
        return action.type == "message" and action.channel == "onsite"

    def refusal(self) -> str:
        """Why an action was not allowed, as the decision's reason says it."""

        why = ("this came from the tracker by an id no trusted source vouched for" if self.entity
               else "only tracker events are known for this lead")
        return f"{why}, and such events may only tag, score or show on-site messages"


def without_trust(anchor: dict[str, Any]) -> dict[str, Any]:
    """An event to carry in a timer that comes due by itself (a date, a silence): its trust stays behind, so
    that timer has the entity's (`TrustPolicy.of_timer`)."""

    return {k: v for k, v in anchor.items() if k != "trusted"}


UNJUDGED = Trust(privileged=False)
"""What a trigger nobody judged may do (`explain`'s what-if triggers): no more than an untrusted event."""


class TrustPolicy:
    """Which sources are trusted, and the verdict for an event or a timer. One per pipeline."""

    def __init__(self, trusted_sources: Collection[str]):
        self.trusted_sources = frozenset(trusted_sources)

    def source_trusted(self, source: str) -> bool:
        """Did `source` declare that it authenticates its senders? Decides how the event's ids resolve
        (core/identity.py) and whether it may unlock privileged actions."""

        return source in self.trusted_sources

    def of_event(self, source: str, *, vouched: bool, entity_trusted: bool) -> Trust:
        """An event's verdict; `vouched`: it came by a visitor id a trusted source linked to its entity;
        `entity_trusted`: a trusted source vouched for the entity before this event."""

        if self.source_trusted(source):
            return _TRUSTED_SOURCE
        return _UNTRUSTED_SOURCE[(vouched, entity_trusted)]

    def of_timer(self, anchor: dict[str, Any] | None, entity_trusted: bool) -> Trust:
        """A timer's verdict: the trust its anchor event had (`trusted` in the anchor), and the entity's."""

        carried = (anchor or {}).get("trusted")
        return _TIMER[(entity_trusted and (carried is None or bool(carried)), entity_trusted)]


# The few verdicts there are, built once: judging an event is a lookup, not a new object.
_TRUSTED_SOURCE = Trust(privileged=True, source=True, entity=True)
_UNTRUSTED_SOURCE = {(vouched, entity): Trust(privileged=vouched and entity, guest=entity and not vouched,
                                              entity=entity)
                     for vouched in (False, True) for entity in (False, True)}
_TIMER = {(privileged, entity): Trust(privileged=privileged, entity=entity)
          for privileged in (False, True) for entity in (False, True)}
