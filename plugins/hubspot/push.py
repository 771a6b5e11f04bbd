"""Outbox items → HubSpot writes, each safe to repeat with the same idempotency key.

The dispatcher may hand us an item again after a crash, a timeout whose request HubSpot did apply, or a
RetryLater. HubSpot's CRM API has no idempotency header, so every action is made repeatable here:

| action | how a repeat is harmless |
|---|---|
| tag / untag | read the tags property, add/remove, write only if it changed (a set operation) |
| set | a PATCH of the same values |
| score | the key goes into a ledger property in the same PATCH as the new score; a key already in it → no-op |
| task, note | the key is stored in a task/note property (`key_property`); we search for it before creating |
| transactional email | HubSpot sends at most one email per `sendId`; the key is the sendId |

Search lags writes by seconds, so a task create that timed out (HubSpot may still have made it) is retried
no sooner than `search_lag` seconds, when the search sees it.
"""

from __future__ import annotations

import hashlib
import html
from typing import Callable

from crmrules.api import ActionNotSupported, CustomAction, OutboxItem, PushFailed, RetryLater

from . import properties
from .client import Client, Unreachable
from .settings import HubSpotSettings

# HUBSPOT_DEFINED default association type ids (associations v4), activity → record.
ASSOCIATION_TYPE_IDS = {
    ("tasks", "contacts"): 204, ("tasks", "companies"): 192, ("tasks", "deals"): 216,
    ("notes", "contacts"): 202, ("notes", "companies"): 190, ("notes", "deals"): 214,
}

SUPPORTED = ("tag", "untag", "score", "set", "task", "message")


class Target:
    """The HubSpot record an item is about."""

    def __init__(self, object_type: str, object_id: str):
        self.object_type = object_type
        self.object_id = object_id

    def __str__(self) -> str:
        return f"{self.object_type}/{self.object_id}"


def push(item: OutboxItem, options: HubSpotSettings, client: Client) -> str:
    action = item.action
    name = action.name if isinstance(action, CustomAction) else action.type
    handler = _HANDLERS.get(action.type)
    if handler is None:
        raise ActionNotSupported(
            f"the HubSpot plugin cannot apply '{name}' actions (it pushes {', '.join(SUPPORTED)}); "
            f"route '{name}' to another plugin under `targets:` in crmrules.yaml")
    if item.shadow:
        return "shadow: not pushed"
    return handler(item, find_target(item, client), options, client)


def find_target(item: OutboxItem, client: Client) -> Target:
    """The record's HubSpot id from the item's identities, else (leads) the contact with the item's email."""

    object_type = properties.OBJECT_TYPES[item.entity_kind]
    hubspot_id = item.identities.get("hubspot_id")
    if hubspot_id:
        return Target(object_type, hubspot_id)
    email = item.identities.get("email")
    if object_type == "contacts" and email:
        found = client.find_one("contacts", "email", email, names=["email"])
        if found is not None:
            return Target(object_type, str(found.id))
        raise PushFailed(f"no HubSpot record for {email}: no contact has this email")
    known = ", ".join(sorted(item.identities)) or "none"
    raise PushFailed(f"no HubSpot record for {item.entity_kind} {item.entity_id}: no hubspot_id (ids known: {known})")


# ---------------------------------------------------------------- tag, untag, score, set

def split_values(raw: str | None) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in (raw or "").split(";") if v.strip()))


def _tag(item: OutboxItem, target: Target, options: HubSpotSettings, client: Client) -> str:
    tag = item.action.tag.strip()  # type: ignore[union-attr]
    if not tag or ";" in tag:
        raise PushFailed(f"tag {tag!r} cannot be stored in a semicolon-separated HubSpot property")
    prop = options.tags_property
    tags = split_values(client.get(target.object_type, target.object_id, [prop]).get(prop))
    if item.action.type == "tag":
        wanted = tags if tag in tags else tags + [tag]
    else:
        wanted = [t for t in tags if t != tag]
    if wanted == tags:
        return f"{target} {prop} unchanged"
    client.update(target.object_type, target.object_id, {prop: ";".join(wanted)})
    return f"{target} {prop}={';'.join(wanted)}"


def _score(item: OutboxItem, target: Target, options: HubSpotSettings, client: Client) -> str:
    points = float(item.action.points)  # type: ignore[union-attr]
    prop, ledger_prop = options.score_property, options.score_ledger_property
    current = client.get(target.object_type, target.object_id, [prop] + ([ledger_prop] if ledger_prop else []))
    mark = hashlib.sha256(item.idempotency_key.encode("utf-8")).hexdigest()[:16]
    ledger = split_values(current.get(ledger_prop)) if ledger_prop else []
    if mark in ledger:
        return f"{target} {prop} already has this push"
    try:
        value = float(current.get(prop) or 0)
    except ValueError:
        raise PushFailed(f"{target} {prop} holds {current.get(prop)!r}, not a number") from None
    update = {prop: properties.hubspot_value(round(value + points, 4))}
    if ledger_prop:
        update[ledger_prop] = ";".join((ledger + [mark])[-options.score_ledger_size:])
    client.update(target.object_type, target.object_id, update)
    return f"{target} {prop}={update[prop]}"


def _set(item: OutboxItem, target: Target, options: HubSpotSettings, client: Client) -> str:
    extra = options.property_map.get(target.object_type)  # type: ignore[call-overload]
    try:
        update = properties.to_hubspot(target.object_type, dict(item.action.properties), extra)  # type: ignore[union-attr]
    except ValueError as exc:
        raise PushFailed(str(exc)) from None
    if not update:
        return f"{target} nothing to set"
    client.update(target.object_type, target.object_id, update)
    return f"{target} set {', '.join(sorted(update))}"


# ---------------------------------------------------------------- task, message

def _decided_at(item: OutboxItem) -> float:
    """When the rule decided: the item is due `after` seconds later."""

    return item.due_at - float(item.action.after or 0)


def _existing(object_type: str, item: OutboxItem, options: HubSpotSettings, client: Client) -> str | None:
    if not options.key_property:
        return None
    found = client.find_one(object_type, options.key_property, item.idempotency_key, names=[options.key_property])
    return str(found.id) if found is not None else None


def _create_once(object_type: str, item: OutboxItem, target: Target, props: dict[str, str],
                 options: HubSpotSettings, client: Client) -> tuple[str, bool]:
    """(id, created now): the activity with this item's key if one exists, else a new one."""

    found = _existing(object_type, item, options, client)
    if found:
        return found, False
    if options.key_property:
        props = {**props, options.key_property: item.idempotency_key}
    link = [(target.object_id, ASSOCIATION_TYPE_IDS[(object_type, target.object_type)])]
    try:
        return client.create(object_type, props, link), True
    except Unreachable as exc:
        # HubSpot may have made it even so; the retry's search must be able to see it.
        raise RetryLater(exc.reason, retry_after=max(options.search_lag, exc.retry_after or 0)) from exc


def _task(item: OutboxItem, target: Target, options: HubSpotSettings, client: Client) -> str:
    action = item.action
    due = _decided_at(item) + float(action.due_in or 0)  # type: ignore[union-attr]
    props = {
        "hs_task_subject": action.title,  # type: ignore[union-attr]
        "hs_task_body": action.body,  # type: ignore[union-attr]
        "hs_task_priority": action.priority.upper(),  # type: ignore[union-attr]
        "hs_task_status": "NOT_STARTED",
        "hs_task_type": "TODO",
        "hs_timestamp": str(int(due * 1000)),
    }
    note = ""
    owner = action.owner  # type: ignore[union-attr]
    if owner:
        owner_id = owner if owner.isdigit() else options.owner_ids.get(owner)
        if owner_id:
            props["hubspot_owner_id"] = owner_id
        else:
            note = f" (owner {owner!r} is not in owner_ids: left unassigned)"
    task_id, created = _create_once("tasks", item, target, props, options, client)
    return f"task {task_id}{'' if created else ' (already created)'} on {target}{note}"


def _message(item: OutboxItem, target: Target, options: HubSpotSettings, client: Client) -> str:
    """Send the transactional email when a template id is configured, then record a note on the record.

    The email goes first: if HubSpot refuses it, no note claims it was sent.
    """

    action = item.action
    parts: list[str] = []
    email_id = None
    if action.channel == "email":  # type: ignore[union-attr]
        email_id = options.email_template_ids.get(action.template or "") or options.email_template_ids.get("default")  # type: ignore[union-attr]
    status_id = None
    if email_id is not None:
        if action.advertising:  # type: ignore[union-attr]
            raise ActionNotSupported("an advertising message cannot go through HubSpot transactional email, "
                                     "which is for transactional content only; send it as a marketing email")
        to = item.identities.get("email") if target.object_type == "contacts" else None
        if not to and target.object_type == "contacts":
            to = client.get("contacts", target.object_id, ["email"]).get("email")
        if not to:
            raise PushFailed(f"no email address for {target}: cannot send transactional email {email_id}")
        custom = {"subject": action.subject, "body": action.body}  # type: ignore[union-attr]
        status_id = client.send_transactional(email_id, to, item.idempotency_key, custom)
        parts.append(f"email {status_id}")
    body = note_html(action.subject, action.body,  # type: ignore[union-attr]
                     f"sent as HubSpot transactional email {email_id} (status {status_id})" if status_id else
                     f"{action.channel} message decided by crmrules rule {item.rule}")  # type: ignore[union-attr]
    props = {"hs_note_body": body, "hs_timestamp": str(int(_decided_at(item) * 1000))}
    note_id, created = _create_once("notes", item, target, props, options, client)
    parts.append(f"note {note_id}{'' if created else ' (already created)'} on {target}")
    return "; ".join(parts)


def note_html(subject: str, body: str, footer: str) -> str:
    """HubSpot shows `hs_note_body` as HTML: escape the text, keep its line breaks."""

    def para(text: str) -> str:
        return "<p>" + html.escape(text, quote=False).replace("\n", "<br>") + "</p>"

    head = f"<p><strong>{html.escape(subject, quote=False)}</strong></p>" if subject else ""
    return head + (para(body) if body else "") + f"<p><em>{html.escape(footer, quote=False)}</em></p>"


_HANDLERS: dict[str, Callable[[OutboxItem, Target, HubSpotSettings, Client], str]] = {
    "tag": _tag, "untag": _tag, "score": _score, "set": _set, "task": _task, "message": _message,
}
