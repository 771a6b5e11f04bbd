"""Guards: after a rule matched, whether (and when) it may act. Read-only; each stop is a sentence.

They run after matching because they need history and time: groups (one winner per trigger), limits and
cooldowns (per rule, or per `per:` value), and for messages consent, the pack's per-person cap, quiet hours and
the Korean night-time ban on advertising. The evaluator records every stop as a `blocked` decision with the
sentence as its reason, so `crmrules explain` can answer "why didn't this lead get it?". Consent is read again
for actions that wait (`consent_refusal`, by the pipeline when consent changes and just before a push). Trust
(may this trigger write to a CRM at all) is trust.py's; shadow mode is the evaluator's (it decides in its own
ledger, records, changes nothing live).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Mapping

from ..people import in_korea
from ..language import ast
from ..language.durations import format_duration
from ..models import Action, SendMessage
from .calendar import quiet_until
from .compiler import CompiledRule
from .state import EntityState
from .trigger import Context, Trigger

MESSAGE_CHANNELS_NEEDING_CONSENT = {"email", "sms", "kakao", "push"}
KOREA_NIGHT = ast.QuietHours(dt.time(21, 0), dt.time(8, 0), "Asia/Seoul")


def limit_key(cr: CompiledRule, ctx: Context, trigger: Trigger) -> tuple[str, Any]:
    """What the rule's limit and cooldown count under: the rule, or with `per:` the rule and that value
    (taken from the event being evaluated, which for a timer is the event that set it)."""

    per = cr.rule.per
    if per is None:
        return cr.key, None
    if per.scope == "event":
        value = trigger.props.get(per.name)
    else:
        record = ctx.state(per.scope)
        value = record.view().get(per.name) if record is not None else None
    if value is None or value == "":
        value = None  # events without the property share one count, so that they cannot repeat freely
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return f"{cr.key}#{per.text}={text}", value


def rule_guard(cr: CompiledRule, state: EntityState, now: float, groups_won: Mapping[str, str],
               counter: str | None = None, per_value: Any = None) -> str | None:
    """Why this rule may not act on this trigger (its group, limit or cooldown), or None."""

    rule = cr.rule
    if rule.group and rule.group in groups_won:
        return f"group {rule.group!r}: rule {groups_won[rule.group]!r} took this trigger (higher priority)"
    counter = counter or cr.key
    of = f" for {rule.per.text} {per_value!r}" if rule.per is not None else ""
    limit = rule.limit
    if limit.times is not None:
        since = now - float(limit.per) if limit.per else None
        times = state.fired_within(counter, since)
        if len(times) >= limit.times:
            last = dt.datetime.fromtimestamp(max(times), dt.timezone.utc).isoformat()
            return f"limit {limit.text!r}{of} reached (last fired {last})"
    if rule.cooldown is not None:
        recent = state.fired_within(counter, now - float(rule.cooldown))
        if recent:
            since_text = dt.datetime.fromtimestamp(max(recent), dt.timezone.utc).isoformat()
            return f"cooldown {rule.cooldown.text}{of} since {since_text}"
    return None


def message_guard(action: SendMessage, state: EntityState, pack: ast.Pack, due: float) -> tuple[float, str | None]:
    """(when the message may go, why it may not): consent, the per-person cap, quiet hours, the Korean night."""

    props = state.props
    refused = consent_refusal(action, props)
    if refused:
        return due, refused
    policy = pack.messages
    if policy.max_per_person is not None:
        assert policy.per is not None  # the parser reads the cap as "N per <duration>"
        since = due - float(policy.per)
        sent = [t for t in state.messages if t > since]
        if len(sent) >= policy.max_per_person:
            per = getattr(policy.per, "text", None) or format_duration(float(policy.per))
            return due, f"message cap {policy.max_per_person} per {per} reached"
    timezone = props.get("timezone") or props.get("time_zone")
    if policy.quiet_hours is not None:
        until = quiet_until(due, policy.quiet_hours, timezone)
        if until is not None:
            due = until
    korean = (action.locale or "").startswith("ko") or in_korea(props)
    if action.advertising and korean and not truthy(props.get("night_ad_opt_in")):
        until = quiet_until(due, KOREA_NIGHT)
        if until is not None:
            due = until
    return due, None


def needs_consent(action: Action) -> bool:
    """Whether consent decides if this action may go: a message on a channel that reaches the person."""

    return isinstance(action, SendMessage) and action.channel in MESSAGE_CHANNELS_NEEDING_CONSENT


def consent_refusal(action: Action, props: Mapping[str, Any]) -> str | None:
    """Why the lead's consent (`props`, their current fields) forbids this action, or None.

    Read when a rule decides, and again for an action that waited (a delay, a quiet-hours hold) when the
    lead's consent changes and just before it is pushed (`Pipeline.send_check`): an opt-out always wins."""

    if not isinstance(action, SendMessage) or action.channel not in MESSAGE_CHANNELS_NEEDING_CONSENT:
        return None
    channel = action.channel
    if truthy(props.get("unsubscribed")) or truthy(props.get(f"{channel}_unsubscribed")):
        return f"consent: lead unsubscribed, {channel} message not sent"
    opt_in = truthy(props.get(f"{channel}_opt_in"))
    if opt_in is False:
        return f"consent: {channel}_opt_in is false, message not sent"
    if action.advertising and opt_in is None:
        return f"consent: {channel}_opt_in unknown, advertising message not sent"
    return None


def consent_fields(props: Mapping[str, Any]) -> dict[str, Any]:
    """The fields consent reads, to tell whether an evaluation changed the lead's consent."""

    return {k: v for k, v in props.items()
            if k == "unsubscribed" or k.endswith("_unsubscribed") or k.endswith("_opt_in")}


def truthy(value: Any) -> bool | None:
    """A CRM's yes/no field (opt-ins, unsubscribes) as True, False or None when unknown."""

    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "y", "1", "on", "opted_in", "subscribed"):
        return True
    if text in ("false", "no", "n", "0", "off", "opted_out", "unsubscribed"):
        return False
    return None



