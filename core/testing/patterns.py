"""Actions as a test names them (`{tag: hot}`, `{task: {due: 4h}}`, `message`), read strictly against the
action table, and recognised among what a case's rules did.

What a test may write for each type comes from the type itself (`ActionType.expect`, core/actions/), so a
plugin's action is checked like a built-in one. Besides the type's fields, any delayable action takes `after:`
(a duration), and every action written as fields takes what happened to it after the decision: `cancelled:`,
`at:` (when it goes out), `held:` (moved later by quiet hours) and `held_until:` (both at once).
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Mapping

from pydantic import TypeAdapter, ValidationError

from ..actions import ActionType
from ..language.durations import format_duration, parse_duration
from ..models import Action, CustomAction, Decision, OutboxItem
from .times import show, when

AFTER_THE_DECISION = ("cancelled", "at", "held", "held_until")

Report = Callable[[tuple[int, int], str], None]  # (line, column), sentence


@dataclass(frozen=True)
class Happened:
    """One action a decision carried, with its outbox row if it was queued (a shadow decision queues none)."""

    decision: Decision
    action: Action
    item: OutboxItem | None
    status: str | None

    @property
    def kind(self) -> str:
        action = self.action
        return action.name if isinstance(action, CustomAction) else action.type

    @property
    def decided_due(self) -> float:
        """When it would have gone out without quiet hours: the decision plus its delay."""

        return self.decision.at + float(self.action.after or 0)

    @property
    def held(self) -> bool:
        return self.item is not None and self.item.due_at > self.decided_due + 0.5


@dataclass
class ActionPattern:
    """What a test says about one action; `want` is what the type's `matches` takes (None: any of the type)."""

    kind: str
    action_type: ActionType
    want: Any
    text: str  # as the test wrote it, for messages
    cancelled: bool | None = None
    at: dt.datetime | None = None
    held: bool | None = None
    line: int = 0

    def matches(self, happened: Happened) -> bool:
        if happened.kind != self.kind:
            return False
        if self.want is not None and not self.action_type.matches(self.want, happened.action):
            return False
        if self.cancelled is not None and (happened.status == "cancelled") != self.cancelled:
            return False
        if self.held is not None and happened.held != self.held:
            return False
        if self.at is not None:
            if happened.item is None or abs(happened.item.due_at - self.at.timestamp()) > 0.5:
                return False
        return True


@dataclass
class _Fields:
    """The reading of one `{type: {...}}` mapping."""

    want: dict[str, Any] = field(default_factory=dict)
    cancelled: bool | None = None
    at: dt.datetime | None = None
    held: bool | None = None


def read_pattern(item: Any, mark: tuple[int, int], table: Mapping[str, ActionType], start: dt.datetime,
                 report: Report) -> ActionPattern | None:
    """One item of `actions:`, `actions_not:` or `expect_no_actions:`; None (and reported) if it is wrong."""

    if isinstance(item, str):
        action_type = _type(item, mark, table, report)
        return ActionPattern(item, action_type, None, item, line=mark[0]) if action_type else None
    if not isinstance(item, dict) or len(item) != 1:
        report(mark, "an action is one type and what it is: `{tag: hot}`, `{task: {title: 김유진님 연락}}`, "
                     "or a type alone: `message`")
        return None
    ((kind, value),) = item.items()
    kind_mark = _key_mark(item, kind, mark)
    action_type = _type(str(kind), kind_mark, table, report)
    if action_type is None:
        return None
    value_mark = _value_mark(item, kind, mark)
    text = f"{kind}: {flow(value)}"
    form = action_type.expect.form
    if form == "number":
        try:
            float(str(value).replace(" ", ""))
        except ValueError:
            report(value_mark, f"`{kind}:` is a number of points here, e.g. `{{{kind}: 30}}`; got {value!r}")
            return None
        return ActionPattern(str(kind), action_type, value, text, line=mark[0])
    if form == "text":
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            report(value_mark, f"`{kind}:` is a tag name here, e.g. `{{{kind}: hot}}` (one per item)")
            return None
        return ActionPattern(str(kind), action_type, str(value), text, line=mark[0])
    if form == "properties":
        if not isinstance(value, dict) or not value:
            report(value_mark, f"`{kind}:` takes the properties it set, e.g. `{{{kind}: {{lifecycle: sql}}}}`")
            return None
        return ActionPattern(str(kind), action_type, plain(value), text, line=mark[0])
    shorthand = action_type.expect.shorthand
    if isinstance(value, str) and shorthand:
        return ActionPattern(str(kind), action_type, {shorthand: value}, text, line=mark[0])
    if value is None:
        return ActionPattern(str(kind), action_type, None, text, line=mark[0])
    if not isinstance(value, dict):
        report(value_mark, f"`{kind}:` takes the fields of the action, e.g. "
                           f"`{{{kind}: {{{_example(action_type)}: ...}}}}`")
        return None
    read = _read_fields(str(kind), action_type, value, value_mark, start, report)
    if read is None:
        return None
    return ActionPattern(str(kind), action_type, read.want, text, read.cancelled, read.at, read.held, line=mark[0])


def _read_fields(kind: str, action_type: ActionType, value: dict[Any, Any], mark: tuple[int, int],
                 start: dt.datetime, report: Report) -> _Fields | None:
    spec = action_type.expect
    known = set(spec.fields) if spec.fields is not None else None
    durations = dict(spec.durations)
    out, ok = _Fields(), True
    for key, given in value.items():
        key_at, value_at = _key_mark(value, key, mark), _value_mark(value, key, mark)
        name = str(key)
        if name in ("cancelled", "held"):
            if not isinstance(given, bool):
                report(value_at, f"`{name}:` is true or false")
                ok = False
            else:
                setattr(out, name, given)
        elif name in ("at", "held_until"):
            try:
                out.at = when(start, given)
            except ValueError as exc:
                report(value_at, f"{name}: {exc}")
                ok = False
            if name == "held_until":
                out.held = True
        elif name == "after" and action_type.delayable:
            seconds = _seconds(given, value_at, name, report)
            ok = ok and seconds is not None
            out.want["after"] = seconds
        elif name in durations:
            seconds = _seconds(given, value_at, name, report)
            ok = ok and seconds is not None
            out.want[durations[name]] = seconds
        elif name.endswith("_contains") and (known is None or name[: -len("_contains")] in known) \
                and name[: -len("_contains")] not in durations:
            out.want[name] = str(given)
        elif known is None or name in known:
            problem = _value_problem(spec.model, name, given)
            if problem:
                report(value_at, f"{name}: {problem}")
                ok = False
            out.want[name] = plain(given)
        else:
            report(key_at, _unknown(kind, name, action_type))
            ok = False
    return out if ok else None


def _seconds(value: Any, mark: tuple[int, int], name: str, report: Report) -> float | None:
    try:
        return float(parse_duration(value))
    except ValueError as exc:
        report(mark, f"{name}: {exc}")
        return None


def _unknown(kind: str, name: str, action_type: ActionType) -> str:
    spec = action_type.expect
    fields = set(spec.fields or ())
    allowed = fields | {f"{f}_contains" for f in fields - set(spec.durations)} | set(AFTER_THE_DECISION)
    if action_type.delayable:
        allowed.add("after")
    close = difflib.get_close_matches(name, sorted(allowed), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"it takes {', '.join(sorted(allowed))}"
    return f"a `{kind}` action has no field {name!r}; {hint}"


def _type(kind: str, mark: tuple[int, int], table: Mapping[str, ActionType], report: Report) -> ActionType | None:
    action_type = table.get(kind)
    if action_type is None:
        close = difflib.get_close_matches(kind, sorted(table), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"the types are {', '.join(sorted(table))}"
        report(mark, f"no action type {kind!r}; {hint}")
    return action_type


def _example(action_type: ActionType) -> str:
    return sorted(action_type.expect.fields or {"field"})[0]


@lru_cache(maxsize=256)
def _adapter(model: Any, name: str) -> TypeAdapter[Any] | None:
    try:
        return TypeAdapter(model.model_fields[name].annotation)
    except Exception:  # an annotation pydantic cannot build alone: its values are left to the match
        return None


def _value_problem(model: Any, name: str, value: Any) -> str | None:
    if model is None or name not in model.model_fields:
        return None
    adapter = _adapter(model, name)
    if adapter is None:
        return None
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"])
    return None


def describe(happened: Happened, zone: dt.tzinfo | None) -> str:
    """An action as a failure message shows it: its fields, and when it goes out if not at once."""

    action = happened.action
    data = action.model_dump(exclude_none=True, exclude_defaults=True)
    data.pop("type", None)
    if action.type == "custom":
        data = dict(data.get("params", {}), **({"after": data["after"]} if "after" in data else {}))
    elif action.type == "set":
        data = data.get("properties", {})
    if "after" in data:
        data["after"] = format_duration(float(data["after"]))
    if "due_in" in data:
        data["due"] = format_duration(float(data.pop("due_in")))
    if action.type in ("score", "tag", "untag"):
        text = f"{happened.kind}: {flow(next(iter(data.values()), ''))}"
    else:
        text = f"{happened.kind}: {flow(data)}"
    item = happened.item
    if item is not None and (item.due_at > happened.decision.at + 0.5 or happened.status == "cancelled"):
        text += f", goes out {show(item.due_at, zone)}"
        if happened.held:
            text += f" (held from {show(happened.decided_due, zone)})"
        text += f", {happened.status}"
    return text


def flow(value: Any) -> str:
    """A value in YAML's flow style, as an admin wrote it: `{title: 환영, due: 4h}`."""

    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "null" if value is None else str(value)


def plain(value: Any) -> Any:
    """Marked YAML containers as plain dicts and lists (what events and matchers are given)."""

    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _key_mark(container: Any, key: Any, default: tuple[int, int]) -> tuple[int, int]:
    marks = getattr(container, "key_marks", None) or {}
    return marks.get(key) or getattr(container, "mark", None) or default


def _value_mark(container: Any, key: Any, default: tuple[int, int]) -> tuple[int, int]:
    marks = getattr(container, "value_marks", None) or {}
    return marks.get(key) or getattr(container, "mark", None) or default
