"""What an action type is: how the loader reads it, how the decide stage builds it, how a pack test matches it.

Each type says, in one place, how the loader reads what a rule wrote (`read`), how the decide stage turns it
into actions for one lead (`build`), and how a pack test recognises it (`matches`). The built-in types
(`builtin.py`) reach the table through the same `register_actions` hook a plugin uses; a plugin registers a
pydantic model of its fields and gets `model_action`'s generic behaviour. So no stage keeps its own list of
action names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Protocol

from pydantic import BaseModel, ValidationError

from ..models import Action, CustomAction

if TYPE_CHECKING:
    from ..language.ast import Template


class FieldReader(Protocol):
    """What the loader hands an action type: the value a rule wrote under the type's name, and located errors."""

    kind: str
    value: Any

    def error(self, message: str, at: str | None = None, *, use_key: bool = False, path: str | None = None) -> None:
        """Report at the action (`at=None`) or at the field `at` of the mapping `mapping()` returned."""

    def mapping(self, required: set[str], permitted: set[str], shorthand: str | None = None) -> dict[str, Any] | None:
        """The value as a mapping of fields (a scalar fills `shorthand`); unknown and missing fields reported."""

    def number(self) -> float | None:
        """The value as a number of points: 30, +30, -10 (YAML reads a leading + as text); None if it is not one."""

    def duration(self, at: str) -> float | None:
        """The field `at` of the mapping read as a duration (`30m`, `2d`), reported where it is wrong."""

    def template_names(self) -> set[str]:
        """The names of the pack's message templates (files in templates/)."""

    def check_templates(self) -> None:
        """Report template syntax errors in the text fields, so `check` finds them before a customer would."""


class BuildEnv(Protocol):
    """What the decide stage hands an action type when a rule fires for one entity."""

    after: float | None
    default_locale: str

    def render(self, text: str, required: str | None = None) -> str:
        """One template string rendered for this lead and trigger (sandboxed, bounded). With `required` (what
        the text is: "the tag's name"), a value in it that renders empty raises instead: the action is not
        taken and the decision says why."""

    def render_value(self, value: Any) -> Any:
        """Every string inside a value rendered."""

    def lead(self) -> dict[str, Any] | None:
        """The lead's properties (the subject's, or its linked lead's), if there is a lead."""

    def template(self, name: str, locale: str) -> Template:
        """The pack's template `name` in `locale`, else in the pack's default locale, else any."""


@dataclass(frozen=True)
class Expectable:
    """What a pack test may write to recognise an action of this type (`expect: [{rule: r, actions: [...]}]`),
    so that a misspelt field is a located error in the test file, not an expectation that can never hold (or,
    under `actions_not`, one that always does).

    `form` is the shape of the expectation: `number` (score's points), `text` (a tag's name), `properties`
    (set: any property names and values), or `fields` (a mapping of the names in `fields`, each also as
    `<name>_contains` for a substring; any names when `fields` is None, a plugin action without a model).
    `durations` maps a field the test writes as a duration to the action's field in seconds (a task's
    `due: 4h` is its `due_in: 14400`); `shorthand` is the field a plain text stands for (a task's title);
    `model` checks the values of the fields it declares (`priority: hihg` is an error)."""

    form: Literal["number", "text", "properties", "fields"] = "fields"
    fields: frozenset[str] | None = None
    durations: Mapping[str, str] = field(default_factory=dict)
    shorthand: str | None = None
    model: type[BaseModel] | None = None


Reader = Callable[[FieldReader], "dict[str, Any] | None"]
Builder = Callable[[dict[str, Any], BuildEnv], "list[Action]"]
Matcher = Callable[[Any, Action], bool]


@dataclass(frozen=True)
class ActionType:
    """One kind of `then:` item. `static(fields)` says the built actions are the same for every lead and trigger
    (no template, nothing read from the lead), so the decide stage builds them once per rule. `expect` says
    what a pack test may write about it; `matches` then recognises it."""

    name: str
    read: Reader
    build: Builder
    matches: Matcher
    delayable: bool = True
    static: Callable[[dict[str, Any]], bool] = lambda fields: False
    model: type[BaseModel] | None = None
    expect: Expectable = Expectable()


def field_matches(want: dict[str, Any], data: dict[str, Any], after: float | None) -> bool:
    """A test's expected fields against an action's: `x_contains: text` is a substring test, `after` is seconds."""

    for key, value in want.items():
        if key.endswith("_contains"):
            if str(value) not in str(data.get(key[: -len("_contains")], "")):
                return False
        elif key == "after":
            if after != float(value):
                return False
        elif data.get(key) != value:
            return False
    return True


def model_action(name: str, model: type[BaseModel] | None) -> ActionType:
    """A plugin's action type from the pydantic model of its fields (None: any fields)."""

    def read(field: FieldReader) -> dict[str, Any] | None:
        value = field.value
        payload = dict(value) if isinstance(value, dict) else {"value": value}
        if model is not None:
            try:
                model.model_validate(payload)
            except ValidationError as exc:  # reported in the plugin's words, at the field they name
                for err in exc.errors():
                    loc = err.get("loc", ())
                    where = ".".join(str(p) for p in loc)
                    first = str(loc[0]) if loc else None
                    if first is not None and isinstance(value, dict) and first in value:
                        field.error(err["msg"], at=first, use_key=True, path=where)
                    else:
                        field.error(err["msg"], path=where or None)
                return None
            except Exception as exc:  # a plugin's own validator failing is its words too, not a crash of `check`
                field.error(str(exc))
                return None
        field.check_templates()
        return payload

    def build(fields: dict[str, Any], env: BuildEnv) -> list[Action]:
        params = env.render_value(fields)
        if model is not None:
            params = model.model_validate(params).model_dump(mode="json")
        return [CustomAction(name=name, params=params, after=env.after)]

    def matches(want: Any, got: Action) -> bool:
        if got.type != "custom" or got.name != name:
            return False
        if isinstance(want, str):
            want = {"body_contains": want}
        return field_matches(want or {}, got.params, got.after)

    fields = frozenset(model.model_fields) if model is not None else None
    shorthand = "body_contains" if fields is None or "body" in fields else None
    expect = Expectable("fields", fields, shorthand=shorthand, model=model)
    return ActionType(name, read, build, matches, delayable=True, model=model, expect=expect)


def as_action_type(name: str, registered: Any) -> ActionType:
    """What `register_actions` was given: a full ActionType (the built-ins) or a plugin's model of fields."""

    if isinstance(registered, ActionType):
        if registered.name != name:
            raise ValueError(f"register_actions: {name!r} registered with the action type of {registered.name!r}")
        return registered
    if registered is None or (isinstance(registered, type) and issubclass(registered, BaseModel)):
        return model_action(name, registered)
    raise TypeError(f"register_actions: {name!r} needs a pydantic model of its fields, got {registered!r}")


__all__ = ["ActionType", "BuildEnv", "Expectable", "FieldReader", "as_action_type", "field_matches", "model_action"]
