"""Segment messages (track, page, identify, screen, group, alias) → crmrules `Event`s.

Pure functions, no Flask: the views call `to_events` with the parsed JSON and the time the request arrived.
Any message that cannot be mapped makes the whole request fail with `BadMessage` (400) naming the message:
nothing of a request is stored unless all of it is (the stock clients never send such messages).

Every event gets `source="web"`: the core treats that source as untrusted (its write keys are public), so tracker
events alone can tag, score and show on-site messages but cannot make crmrules write to a CRM or send email.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from pydantic import ValidationError

from crmrules.api import RECORD_UPDATE, MERGE, EntityRef, Event

from .settings import TrackerSettings

SOURCE = "web"
"""Fixed on purpose: a configurable source could be set to one the core trusts."""

KINDS = ("track", "page", "identify", "screen", "group", "alias")
RESERVED_TYPES = frozenset({RECORD_UPDATE, MERGE})
"""Event types with side effects in the core (set fields, merge records): never from a public endpoint."""

MAX_ID_CHARS = 256

# Segment's spec names (compared in snake_case) → the event types the rule packs use. Everything else becomes the
# snake_case of its name ("Pricing Page Viewed" → pricing_page_viewed). Deployments add or override entries with
# `event_names`.
EVENT_NAMES: dict[str, str] = {
    "product_viewed": "product_view",
    "product_list_viewed": "product_list_view",
    "product_clicked": "product_click",
    "products_searched": "search",
    "product_added": "cart_add",
    "product_removed": "cart_remove",
    "cart_viewed": "cart_view",
    "checkout_started": "checkout_start",
    "order_completed": "purchase",
    "order_refunded": "refund",
    "coupon_applied": "coupon_apply",
    "signed_up": "signup",
    "signed_in": "login",
    "signed_out": "logout",
    "ebook_downloaded": "ebook_download",
    "e_book_downloaded": "ebook_download",
    "form_submitted": "form_submit",
    "video_playback_started": "video_play",
}

# identify traits → lead properties (Segment's reserved traits, camelCase and snake_case spellings).
TRAIT_NAMES: dict[str, str] = {
    "email": "email", "firstName": "first_name", "first_name": "first_name", "lastName": "last_name",
    "last_name": "last_name", "name": "name", "phone": "phone", "title": "title", "username": "username",
    "website": "website", "gender": "gender", "birthday": "birthday", "age": "age", "createdAt": "created_at",
    "created_at": "created_at", "description": "description", "avatar": "avatar", "industry": "industry",
    "employees": "employees", "plan": "plan", "locale": "locale", "timezone": "timezone", "company": "company",
}
ADDRESS_FIELDS = {"city": "city", "country": "country", "postalCode": "postal_code", "postal_code": "postal_code",
                  "state": "state", "street": "street"}

# Traits a public endpoint must not set: consent and guard inputs, what the core keeps itself, CRM ids.
_BLOCKED = re.compile(
    r"^(tags|score|trusted|id|user_id|anonymous_id|hubspot_id|salesforce_id|hs_.*|sf_.*|do_not_.*|night_ad.*)$"
    r"|(^|_)(opt_?in|opted_in|opt_?out|opted_out|unsubscribed|subscribed|subscription|consent|gdpr|marketing)(_|$)"
)

_CAMEL = re.compile(r"(?<=[a-z0-9]{2})(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^\w]+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class BadMessage(Exception):
    """A message that cannot become an event: the request is answered 400 with `reason`."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.reason = reason
        self.status = status


def snake(name: str) -> str:
    """"Product Viewed" → product_viewed, "productViewed" → product_viewed, "상품 조회" → 상품_조회."""

    text = _CAMEL.sub("_", name.strip()) if not re.search(r"[\s_\-]", name.strip()) else name.strip()
    text = _NON_WORD.sub("_", text)
    return re.sub(r"_+", "_", text).strip("_").lower()


def event_type(name: str, overrides: dict[str, str] | None = None) -> str:
    """The crmrules event type for a track event's name (see `EVENT_NAMES`)."""

    key = snake(name)
    table = {**EVENT_NAMES, **{snake(k): v for k, v in (overrides or {}).items()}}
    etype = table.get(key, key)
    if not etype:
        raise BadMessage(f"event name {name!r} has no letters or digits")
    if len(etype) > 128:
        raise BadMessage(f"event name {name[:40]!r}... is longer than 128 characters")
    if etype in RESERVED_TYPES:
        raise BadMessage(f"event name {name!r} is reserved ({etype} changes records); rename the event")
    return etype


# ---------------------------------------------------------------- time

def parse_time(value: Any, what: str) -> dt.datetime:
    """An ISO 8601 time with a zone; a time without one is refused, not guessed."""

    if not isinstance(value, str) or not value.strip():
        raise BadMessage(f"{what} must be an ISO 8601 time with a zone, e.g. 2026-01-05T09:00:00.000Z, "
                         f"not {value!r}")
    text = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise BadMessage(f"{what} {text!r} is not an ISO 8601 time (e.g. 2026-01-05T09:00:00.000Z)") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise BadMessage(f"{what} {text!r} has no time zone; send UTC with Z (2026-01-05T09:00:00Z) or an "
                         "offset (+09:00)")
    return parsed


def occurred_at(msg: dict[str, Any], sent_at: Any, received: dt.datetime, skew: float) -> dt.datetime:
    """When it happened: `timestamp` (else `originalTimestamp`, else `sentAt`, else arrival).

    A client clock that is off by more than `skew` seconds (judged by its `sentAt` against our clock) is corrected
    as Segment does: timestamp + (received - sentAt). A time still in the future is taken as the arrival time, so
    a visitor cannot move a lead's event clock forward.
    """

    for field in ("timestamp", "originalTimestamp"):
        if msg.get(field) is not None:
            when, base_field = parse_time(msg[field], field), field
            break
    else:
        when, base_field = (parse_time(sent_at, "sentAt"), "sentAt") if sent_at is not None else (received, "")
    if sent_at is not None and base_field:
        offset = received - parse_time(sent_at, "sentAt")
        if abs(offset.total_seconds()) > skew:
            when = when + offset
    if (when - received).total_seconds() > skew:
        when = received
    return when


# ---------------------------------------------------------------- ids

def _id(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadMessage(f"{field} must be a string, not {type(value).__name__}")
    text = str(value).strip()
    if len(text) > MAX_ID_CHARS:
        raise BadMessage(f"{field} is longer than {MAX_ID_CHARS} characters")
    return text or None


def message_id(msg: dict[str, Any]) -> str:
    """The event id: Segment's messageId (so a resent message is stored once), else a hash of the message."""

    given = _id(msg.get("messageId"), "messageId")
    if given:
        return given
    stable = {k: v for k, v in msg.items() if k not in ("sentAt", "writeKey", "receivedAt")}
    blob = json.dumps(stable, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return "wt-" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


# ---------------------------------------------------------------- traits and properties

def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def traits_to_properties(traits: Any, options: TrackerSettings) -> dict[str, Any]:
    """identify traits → lead properties: Segment's names mapped, other scalar traits in snake_case, consent and
    guard fields dropped (a public endpoint must not opt anyone in)."""

    if traits is None:
        return {}
    if not isinstance(traits, dict):
        raise BadMessage("traits must be an object")
    blocked = {snake(b) for b in options.blocked_traits}
    out: dict[str, Any] = {}
    for key, value in traits.items():
        name = TRAIT_NAMES.get(key) or snake(str(key))
        if not name or _BLOCKED.search(name) or name in blocked or value is None:
            continue
        if name == "address" and isinstance(value, dict):
            for k, v in value.items():
                if k in ADDRESS_FIELDS and _scalar(v):
                    out[ADDRESS_FIELDS[k]] = v
            continue
        if name == "company" and isinstance(value, dict):
            value = value.get("name")
        if _scalar(value):
            out[name] = value.strip() if isinstance(value, str) else value
    return out


def _properties(msg: dict[str, Any]) -> dict[str, Any]:
    props = msg.get("properties")
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise BadMessage("properties must be an object")
    return dict(props)


def _campaign(context: dict[str, Any]) -> dict[str, Any]:
    campaign = context.get("campaign")
    if not isinstance(campaign, dict):
        return {}
    return {f"utm_{k}": v for k, v in campaign.items() if k in ("name", "source", "medium", "term", "content")
            and _scalar(v)}


PAGE_FIELDS = ("path", "url", "title", "referrer", "search")


# ---------------------------------------------------------------- one message

def to_event(msg: Any, kind: str | None, sent_at: Any, received: dt.datetime, options: TrackerSettings,
             context: dict[str, Any] | None = None) -> Event:
    """One Segment message → one Event. `kind` is the endpoint's type (None for /v1/batch)."""

    if not isinstance(msg, dict):
        raise BadMessage("a message must be a JSON object")
    given = msg.get("type")
    if kind and given not in (None, kind):
        raise BadMessage(f"a {given!r} message was posted to the {kind} endpoint")
    kind = kind or given
    if kind not in KINDS:
        raise BadMessage(f"type {given!r} is not one of {', '.join(KINDS)}")
    given_context = msg.get("context")
    ctx: dict[str, Any] = given_context if isinstance(given_context, dict) else {}
    if context:
        ctx = {**context, **ctx}

    anonymous_id = _id(msg.get("anonymousId"), "anonymousId")
    user_id = _id(msg.get("userId"), "userId")
    ids = {k: v for k, v in (("anonymous_id", anonymous_id), ("user_id", user_id)) if v}
    if not ids:
        raise BadMessage("a message needs a userId or an anonymousId")

    props: dict[str, Any]
    if kind == "track":
        name = msg.get("event")
        if not isinstance(name, str) or not name.strip():
            raise BadMessage("a track message needs an event name (\"event\": \"Product Viewed\")")
        etype = event_type(name, options.event_names)
        props = _properties(msg)
        props.setdefault("event_name", name)
        # Segment's e-commerce spec names the product `product_id` (or `sku`); packs say `same: product`.
        for field in ("product_id", "sku"):
            if "product" not in props and _scalar(props.get(field)) and props[field] != "":
                props["product"] = props[field]
    elif kind in ("page", "screen"):
        etype = "page_view" if kind == "page" else "screen_view"
        given_page = ctx.get("page")
        page: dict[str, Any] = given_page if isinstance(given_page, dict) else {}
        props = {k: page[k] for k in PAGE_FIELDS if _scalar(page.get(k))}
        props.update(_properties(msg))
        for field in ("name", "category"):
            if _scalar(msg.get(field)) and msg.get(field) != "":
                props.setdefault(field, msg[field])
        for k, v in _campaign(ctx).items():
            props.setdefault(k, v)
    elif kind == "identify":
        etype = RECORD_UPDATE
        props = traits_to_properties(msg.get("traits"), options)
        for trait in options.identity_traits:
            value = props.get(TRAIT_NAMES.get(trait, snake(trait)))
            if trait == "email":
                if isinstance(value, str) and _EMAIL.match(value) and len(value) <= 254:
                    ids["email"] = value
            elif _scalar(value) and str(value).strip():
                ids[snake(trait)] = str(value).strip()[:MAX_ID_CHARS]
    elif kind == "group":
        etype = "group"
        group_id = _id(msg.get("groupId"), "groupId")
        if not group_id:
            raise BadMessage("a group message needs a groupId")
        props = {"group_id": group_id, **{f"group_{k}": v for k, v in
                                          traits_to_properties(msg.get("traits"), options).items()}}
    else:  # alias: recorded, never merged (anyone may post one; see README)
        etype = "alias"
        previous = _id(msg.get("previousId"), "previousId")
        if not previous:
            raise BadMessage("an alias message needs a previousId")
        props = {"previous_id": previous}

    try:
        return Event(id=message_id(msg), source=SOURCE, type=etype,
                     occurred_at=occurred_at(msg, msg.get("sentAt", sent_at), received, options.clock_skew),
                     subject=EntityRef(kind="lead", ids=ids), properties=props)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise BadMessage(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def size_of(msg: Any) -> int:
    return len(json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def to_events(body: Any, kind: str | None, received: dt.datetime, options: TrackerSettings) -> list[Event]:
    """A request body → events: one message for /v1/track etc., `{"batch": [...]}` for /v1/batch."""

    if not isinstance(body, dict):
        raise BadMessage("the body must be a JSON object")
    if kind is not None:
        return [to_event(body, kind, body.get("sentAt"), received, options)]
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise BadMessage("a batch body needs \"batch\": [messages]")
    context = body.get("context") if isinstance(body.get("context"), dict) else None
    events = []
    for i, msg in enumerate(batch):
        size = size_of(msg)
        if size > options.max_event_bytes:
            raise BadMessage(f"batch[{i}] is {size} bytes; one event may be at most {options.max_event_bytes}")
        try:
            events.append(to_event(msg, None, body.get("sentAt"), received, options, context))
        except BadMessage as exc:
            raise BadMessage(f"batch[{i}]: {exc.reason}", exc.status) from None
    return events
