"""The built-in action types — score, tag, untag, set, task, message, webhook — each read, built and matched here.

Required fields — a tag's name, a task's title, a message's subject, a webhook's url — are rendered with
`required=`: a `{{ … }}` in them that is empty for this lead (no name, no company) stops that action with the
reason in the decision, instead of queueing the tag `''` or a task "님께 바로 연락". A message's body may have
empty parts but may not be empty as a whole. Other fields (a task's body and owner, `set:` values, a webhook's
payload) may render empty.

They are registered through `register_actions` like a plugin's (see `crmrules.builtins`), so the loader, the
decide stage and pack tests learn them from the same table (docs/rule-language.md, Actions).
"""

from __future__ import annotations

import difflib
from typing import Any, Callable

from ..people import in_korea
from ..templates import EmptyField
from ..models import (Action, AddTag, AdjustScore, CallWebhook, CreateTask, RemoveTag, SendMessage, SetProperty)
from .types import ActionType, BuildEnv, Expectable, FieldReader, field_matches

_SCALARS = (str, int, float, bool, type(None))


def _template_free(value: Any) -> bool:
    return not isinstance(value, str) or ("{{" not in value and "{%" not in value)


def _fields_matcher(kind: str, shorthand: str) -> Callable[[Any, Action], bool]:
    """A test's expectation of a task, message or webhook: its fields, or one text meaning `shorthand`."""

    def matches(want: Any, got: Action) -> bool:
        if got.type != kind:
            return False
        if isinstance(want, str):
            want = {shorthand: want}
        return field_matches(want or {}, got.model_dump(), got.after)

    return matches


# ------------------------------------------------------------------ score

def _read_score(field: FieldReader) -> dict[str, Any] | None:
    points = field.number()
    if points is None:
        field.error(f"{field.value!r} is not a number of points; write +30 or -10")
        return None
    return {"points": points}


def _build_score(fields: dict[str, Any], env: BuildEnv) -> list[Action]:
    return [AdjustScore(points=fields["points"])]


def _match_score(want: Any, got: Action) -> bool:
    return got.type == "score" and float(got.points) == float(str(want).replace(" ", ""))


SCORE = ActionType("score", _read_score, _build_score, _match_score, delayable=False, static=lambda fields: True,
                   expect=Expectable("number"))


# ------------------------------------------------------------------ tag, untag

def _read_tags(field: FieldReader) -> dict[str, Any] | None:
    value = field.value
    tags = value if isinstance(value, list) else [value]
    if not all(isinstance(t, str) and t.strip() for t in tags):
        field.error(f"`{field.kind}:` takes a tag name or a list of them")
        return None
    field.check_templates()
    return {"tags": [t.strip() for t in tags]}


def _static_tags(fields: dict[str, Any]) -> bool:
    return all(isinstance(t, str) and _template_free(t) for t in fields["tags"])


def _build_tag(fields: dict[str, Any], env: BuildEnv) -> list[Action]:
    return [AddTag(tag=env.render(t, required="the tag's name")) for t in fields["tags"]]


def _build_untag(fields: dict[str, Any], env: BuildEnv) -> list[Action]:
    return [RemoveTag(tag=env.render(t, required="the tag's name")) for t in fields["tags"]]


def _match_tag(want: Any, got: Action) -> bool:
    return got.type == "tag" and got.tag == str(want)


def _match_untag(want: Any, got: Action) -> bool:
    return got.type == "untag" and got.tag == str(want)


TAG = ActionType("tag", _read_tags, _build_tag, _match_tag, delayable=False, static=_static_tags,
                 expect=Expectable("text"))
UNTAG = ActionType("untag", _read_tags, _build_untag, _match_untag, delayable=False, static=_static_tags,
                   expect=Expectable("text"))


# ------------------------------------------------------------------ set

def _read_set(field: FieldReader) -> dict[str, Any] | None:
    if not isinstance(field.value, dict) or not field.value:
        field.error("`set:` takes properties and values, e.g. `set: {lifecycle: sql}`")
        return None
    field.check_templates()
    return {"properties": dict(field.value)}


def _static_set(fields: dict[str, Any]) -> bool:
    props = fields["properties"]
    return isinstance(props, dict) and all(isinstance(v, _SCALARS) and _template_free(v) for v in props.values())


def _build_set(fields: dict[str, Any], env: BuildEnv) -> list[Action]:
    return [SetProperty(properties=env.render_value(fields["properties"]))]


def _match_set(want: Any, got: Action) -> bool:
    return got.type == "set" and all(got.properties.get(k) == v for k, v in dict(want).items())


SET = ActionType("set", _read_set, _build_set, _match_set, delayable=False, static=_static_set,
                 expect=Expectable("properties"))


# ------------------------------------------------------------------ task

TASK_FIELDS = {"title", "body", "due", "owner", "priority"}


def _read_task(field: FieldReader) -> dict[str, Any] | None:
    value = field.mapping({"title"}, TASK_FIELDS, shorthand="title")
    if value is None:
        return None
    fields = dict(value)
    if "due" in value:
        fields["due"] = field.duration("due")
    if fields.get("priority", "medium") not in ("low", "medium", "high"):
        field.error("priority is low, medium or high", at="priority")
    field.check_templates()
    return fields


def _static_task(fields: dict[str, Any]) -> bool:
    return all(_template_free(str(fields[k])) for k in ("title", "body", "owner")
               if k in fields and fields[k] is not None)


def _build_task(fields: dict[str, Any], env: BuildEnv) -> list[Action]:
    return [CreateTask(title=env.render(str(fields["title"]), required="the task's title"), body=env.render(str(fields.get("body", ""))),
                       due_in=fields.get("due"),
                       owner=env.render(str(fields["owner"])) if fields.get("owner") else None,
                       priority=fields.get("priority", "medium"), after=env.after)]


TASK = ActionType("task", _read_task, _build_task, _fields_matcher("task", "title"), static=_static_task,
                  expect=Expectable("fields", frozenset({"title", "body", "owner", "priority", "due", "due_in"}),
                                    durations={"due": "due_in"}, shorthand="title", model=CreateTask))


# ------------------------------------------------------------------ message

MESSAGE_FIELDS = {"channel", "template", "subject", "body", "advertising", "locale"}


def _read_message(field: FieldReader) -> dict[str, Any] | None:
    value = field.mapping(set(), MESSAGE_FIELDS)
    if value is None:
        return None
    if "template" not in value and "body" not in value:
        field.error("a message needs `template:` (a file in the pack's templates/) or `body:`")
        return None
    name = value.get("template")
    names = field.template_names()
    if name and name not in names:
        close = difflib.get_close_matches(str(name), sorted(names), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; add templates/<name>.<locale>.txt to the pack"
        field.error(f"no template {name!r}{hint}", at="template")
    if "advertising" in value and not isinstance(value["advertising"], bool):
        field.error("write `advertising: true` or `false`", at="advertising")
    field.check_templates()
    return dict(value)


def _build_message(fields: dict[str, Any], env: BuildEnv) -> list[Action]:
    lead = env.lead()
    locale = str(fields.get("locale") or (lead.get("locale") or lead.get("language") if lead else None)
                 or env.default_locale)
    subject = env.render(str(fields.get("subject", "")), required="the message's subject")
    body = env.render(str(fields.get("body", "")))
    if fields.get("template"):
        template = env.template(str(fields["template"]), locale)
        subject = env.render(template.subject, required="the message's subject") if template.subject else subject
        body = env.render(template.body)
    if not body.strip():  # a long body may have optional parts; it may not be empty
        raise EmptyField("the message's body renders empty for this record")
    advertising = bool(fields.get("advertising", False))
    korean = locale.startswith("ko") or in_korea(lead or {})
    if advertising and korean and not subject.startswith("(광고)"):
        subject = f"(광고) {subject}".strip()  # Korean Network Act art. 50: ads are labelled
    return [SendMessage(channel=str(fields.get("channel", "email")), template=fields.get("template"), subject=subject,
                        body=body, advertising=advertising, locale=locale, after=env.after)]


MESSAGE = ActionType("message", _read_message, _build_message, _fields_matcher("message", "body_contains"),
                     expect=Expectable("fields", frozenset(MESSAGE_FIELDS), shorthand="body_contains",
                                       model=SendMessage))


# ------------------------------------------------------------------ webhook

def _read_webhook(field: FieldReader) -> dict[str, Any] | None:
    value = field.mapping({"url"}, {"url", "payload"})
    if value is None:
        return None
    field.check_templates()
    return dict(value)


def _build_webhook(fields: dict[str, Any], env: BuildEnv) -> list[Action]:
    return [CallWebhook(url=env.render(str(fields["url"]), required="the webhook's url"), payload=env.render_value(fields.get("payload", {})),
                        after=env.after)]


WEBHOOK = ActionType("webhook", _read_webhook, _build_webhook, _fields_matcher("webhook", "url_contains"),
                     expect=Expectable("fields", frozenset({"url", "payload"}), shorthand="url_contains",
                                       model=CallWebhook))

BUILTIN_ACTIONS: tuple[ActionType, ...] = (SCORE, TAG, UNTAG, SET, TASK, MESSAGE, WEBHOOK)
