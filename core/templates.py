"""Message text with {{ lead.first_name }}: Jinja2 in its sandbox, so a rule can read only what it is given.

Shared by the loader (`check_template`: syntax, unknown filters, unknown names and likely typos of field
names, each at its line inside the template) and the decide stage (`render`). Rendering is bounded: the
output, every value the template builds on the way and the time it may take have limits, so a template such
as `{{ 'A' * 1500000000 }}` fails that one action with a reason instead of exhausting the worker.
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from jinja2 import TemplateSyntaxError, Undefined, nodes, select_autoescape
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_OUTPUT = 200_000
"""Characters one rendered text may have."""

MAX_VALUE = 1_000_000
"""Size (characters, list items) of any one value a template builds, and of all of them together in one render."""

MAX_SECONDS = 1.0
"""Time one render may take (checked at every line of the compiled template)."""

TEMPLATE_NAMES = ("lead", "account", "deal", "event", "rule", "vars")
"""What every template sees (core/decide/build.py builds it)."""

RECORD_FIELDS = frozenset({
    # always there (build.py adds them)
    "id", "tags", "score", "name",
    # the crmrules names the CRM plugins map their properties to (plugins/*/properties.py, settings.py)
    "email", "first_name", "last_name", "phone", "mobile_phone", "company", "job_title", "title",
    "lifecycle_stage", "lead_status", "status", "rating", "lead_source", "locale", "language", "timezone",
    "country", "city", "owner_id", "created_at", "updated_at", "unsubscribed", "email_unsubscribed",
    "email_opt_in", "night_ad_opt_in", "domain", "industry", "employees", "annual_revenue", "website", "type",
    "stage", "pipeline", "amount", "close_date", "probability", "anonymous_id", "user_id",
})
"""Fields a lead, account or deal commonly has; with the properties a pack's own conditions and `set:` name,
they are what a template's `lead.x` is checked against for typos."""

EVENT_FIELDS = frozenset({"type", "occurred_at"})
RULE_FIELDS = frozenset({"id", "description"})
_MAPPING_METHODS = frozenset({"get", "items", "keys", "values"})
_NOT_AVAILABLE = {
    nodes.Macro: "{% macro %}", nodes.CallBlock: "{% call %}", nodes.AssignBlock: "{% set %}…{% endset %}",
    nodes.FilterBlock: "{% filter %}", nodes.Extends: "{% extends %}", nodes.Include: "{% include %}",
    nodes.Import: "{% import %}", nodes.FromImport: "{% from … import %}", nodes.Block: "{% block %}",
}
"""Tags a message template has no use for, and that could build text out of sight of the output bound."""


class RenderLimit(TemplateError):
    """A template went over one of the bounds above."""


@dataclass(frozen=True)
class Fields:
    """What a pack's templates may read: the record fields known for typo checks, event properties, the vars."""

    records: frozenset[str] = RECORD_FIELDS
    event: frozenset[str] = EVENT_FIELDS
    vars: frozenset[str] | None = None  # None: not known (every name allowed)


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based line inside the template text
    message: str


# ------------------------------------------------------------------ bounds

_budget: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("crmrules_template_budget", default=None)
_empties: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("crmrules_template_empties", default=None)


def _size(value: Any, memo: dict[int, int] | None = None) -> int:
    """How big a value is once written out: characters of text, items of lists and mappings (shared items count
    each time they appear, which is what printing or joining them costs)."""

    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, range):
        return len(value)
    if not isinstance(value, (list, tuple, dict, set, frozenset)):
        return 1
    memo = {} if memo is None else memo
    known = memo.get(id(value))
    if known is not None:
        return known
    memo[id(value)] = 0  # a value that contains itself counts once
    items = [x for kv in value.items() for x in kv] if isinstance(value, dict) else value
    total = len(value)
    for item in items:
        total += _size(item, memo)
        if total > MAX_VALUE * 10:
            break
    memo[id(value)] = total
    return total


def _refuse_over(size: int, what: str) -> None:
    if size > MAX_VALUE:
        raise RenderLimit(f"{what} would be {size:,} long; a template value may be at most {MAX_VALUE:,}")
    budget = _budget.get()
    if budget is not None:
        budget[0] += size
        if budget[0] > MAX_VALUE * 4:
            raise RenderLimit(f"the template built more than {MAX_VALUE * 4:,} characters of values")


_FORMAT_NUMBER = re.compile(r"%[-+ #0]*(\*|\d+)?(?:\.(\*|\d+))?|\{[^{}]*?:[^{}]*?(\d+)[^{}]*\}")


def _check_format(text: Any) -> None:
    """`'%1500000000s' % x`, `'{:>1500000000}'.format(x)`: widths in a format are allocations too."""

    if not isinstance(text, str):
        return
    for match in _FORMAT_NUMBER.finditer(text):
        for number in match.groups():
            if number == "*" or (number and int(number) > MAX_OUTPUT):
                raise RenderLimit(f"format width {number} is over the limit of {MAX_OUTPUT:,}")


def _check_counts(name: str, args: Iterable[Any]) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_OUTPUT:
            raise RenderLimit(f"{name}({arg}) is over the limit of {MAX_OUTPUT:,}")


_COUNTED = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "indent", "wordwrap", "truncate",
                      "batch", "slice"})
"""Filters and str methods whose number arguments are sizes of what they build."""


def _before(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if name in _COUNTED:
        _check_counts(name, (*args, *kwargs.values()))
    elif name in ("format", "format_map"):
        _check_format(value)
    elif name == "replace" and isinstance(value, str) and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        grows = max(0, len(new) - len(old)) * (value.count(old) if old else len(value) + 1)
        _refuse_over(len(value) + grows, "replace()")
    elif name in ("join", "sum"):
        _refuse_over(_size(value), name)


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    passes_first = getattr(func, "jinja_pass_arg", None) is not None

    def bounded(*args: Any, **kwargs: Any) -> Any:
        plain = args[1:] if passes_first else args  # Jinja hands some filters their context first
        if plain:
            _before(name, plain[0], tuple(plain[1:]), kwargs)
        result = func(*args, **kwargs)
        if isinstance(result, (str, list, tuple)):
            _refuse_over(_size(result), f"the {name} filter's result")
        return result

    for attr in ("jinja_pass_arg",):  # how Jinja knows to hand the filter its context
        if hasattr(func, attr):
            setattr(bounded, attr, getattr(func, attr))
    return bounded


class _BoundedCode(CodeGenerator):
    """`a ~ b` joins through the environment, so its size is checked like `a + b`."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _finalize(value: Any) -> Any:
    """Each `{{ … }}`: None prints as nothing, not "None"; an empty one is noted for required fields."""

    if value is None or (isinstance(value, str) and not value.strip()) or isinstance(value, Undefined):
        empties = _empties.get()
        if empties is not None:
            empties.append(value)
        return ""
    _refuse_over(_size(value), "a printed value")
    return value


class _Environment(ImmutableSandboxedEnvironment):
    code_generator_class = _BoundedCode
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self) -> None:
        super().__init__(autoescape=select_autoescape(default_for_string=False), keep_trailing_newline=False,
                         finalize=_finalize)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        for unneeded in ("lipsum", "cycler", "joiner", "namespace"):
            self.globals.pop(unneeded, None)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            seq, n = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                _refuse_over(_size(seq) * max(n, 0), f"{operator!r} of a text or list")
        elif operator == "**":
            if isinstance(right, (int, float)) and isinstance(left, (int, float)) and abs(left) > 1 and abs(right) > 256:
                raise RenderLimit(f"{left} ** {right} is over the limit (exponents up to 256)")
        elif operator == "%":
            _check_format(left)
        elif operator == "+" and isinstance(left, (str, list, tuple)):
            _refuse_over(_size(left) + _size(right), "'+'")
        return super().call_binop(context, operator, left, right)

    def bounded_concat(self, parts: tuple[Any, ...]) -> str:
        memo: dict[int, int] = {}
        _refuse_over(sum(_size(p, memo) for p in parts), "'~'")
        return "".join(str(p) for p in parts)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, str) and attribute in ("format", "format_map"):
            _check_format(obj)  # Jinja hands out its own wrapper of str.format, not the bound method
        return super().getattr(obj, attribute)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's names
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            _before(getattr(__obj, "__name__", ""), owner, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, (str, list, tuple, range)):
            _refuse_over(_size(result), f"{getattr(__obj, '__name__', 'a call')}()")
        return result


_ENV = _Environment()


@functools.lru_cache(maxsize=2048)
def _compiled(text: str) -> Any:
    return _ENV.from_string(text)


def _run(template: Any, context: dict[str, Any], empties: list[Any] | None) -> str:
    """Stream the output (stopping at MAX_OUTPUT) with a per-line deadline on the template's own code."""

    deadline = time.monotonic() + MAX_SECONDS

    def line(frame: Any, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise RenderLimit(f"the template took longer than {MAX_SECONDS:g}s")
        return line

    def calls(frame: Any, event: str, arg: Any) -> Any:
        return line if frame.f_code.co_filename == "<template>" else None

    traced = sys.gettrace() is None  # a debugger or coverage keeps its tracer: then only the size bounds hold
    budget_token = _budget.set([0])
    empties_token = _empties.set(empties)
    if traced:
        sys.settrace(calls)
    try:
        out: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise RenderLimit(f"the text would be longer than {MAX_OUTPUT:,} characters")
            out.append(chunk)
        return "".join(out)
    finally:
        if traced:
            sys.settrace(None)
        _budget.reset(budget_token)
        _empties.reset(empties_token)


# ------------------------------------------------------------------ rendering

def render(text: str, context: dict[str, Any], required: str | None = None) -> str:
    """Render one string; plain strings pass through untouched (and cheaply). With `required` (what the text
    is, e.g. "the task title"), a `{{ … }}` that renders empty is an error instead of a gap in the text."""

    if "{{" not in text and "{%" not in text:
        return text
    empties: list[Any] | None = [] if required else None
    out = _run(_compiled(text), context, empties)
    if empties or (required and not out.strip()):
        raise EmptyField(f"{required} has an empty value for this record: {text.strip()!r} renders "
                         f"{out.strip()!r}; give it a fallback, e.g. {{{{ lead.name | default('고객', true) }}}}")
    return out


class EmptyField(ValueError):
    """A required field (a tag's name, a task's title, a message's text) would be empty or have a gap."""


def render_value(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


# ------------------------------------------------------------------ checking

def check_template(text: str, fields: Fields | None) -> list[Problem]:
    """Every problem `check` can see in one template: syntax, tags and filters that do not exist here, names
    a template cannot read and, with `fields`, misspelt field names (`lead.nmae`), each at its line."""

    try:
        tree = _ENV.parse(text)
    except TemplateSyntaxError as exc:
        return [Problem(exc.lineno or 1, exc.message or str(exc))]
    problems: list[Problem] = []
    for kind, tag in _NOT_AVAILABLE.items():
        for tag_node in tree.find_all(kind):
            problems.append(Problem(tag_node.lineno, f"{tag} is not available in message templates"))
    for used in tree.find_all((nodes.Filter, nodes.Test)):
        assert isinstance(used, (nodes.Filter, nodes.Test))
        table: dict[str, Any] = _ENV.filters if isinstance(used, nodes.Filter) else _ENV.tests
        what = "filter" if isinstance(used, nodes.Filter) else "test"
        if used.name not in table:
            problems.append(Problem(used.lineno, f"unknown {what} {used.name!r}{_hint(used.name, table)}"))
    allowed = set(TEMPLATE_NAMES) | set(_ENV.globals)
    local = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")} | {"loop"}
    undeclared = {n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"} - local
    for name in sorted(undeclared - allowed):
        first = next((n for n in tree.find_all(nodes.Name) if n.name == name), None)
        problems.append(Problem(first.lineno if first else 1,
                                f"unknown name {name!r}{_hint(name, TEMPLATE_NAMES, always=True)}"))
    if fields is not None:
        problems += _field_problems(tree, fields)
    if not problems:
        try:
            _ENV.compile(text)
        except TemplateSyntaxError as exc:  # what only the compiler sees
            problems.append(Problem(exc.lineno or 1, exc.message or str(exc)))
    return sorted(problems, key=lambda p: p.line)


def _field_problems(tree: nodes.Template, fields: Fields) -> list[Problem]:
    problems = []
    shadowed = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for node in tree.find_all(nodes.Getattr):
        if not isinstance(node.node, nodes.Name) or node.node.name in shadowed:
            continue
        scope, attr = node.node.name, node.attr
        if attr in _MAPPING_METHODS:
            continue
        if scope == "vars" and fields.vars is not None and attr not in fields.vars:
            known = sorted(fields.vars)
            hint = _hint(attr, known, always=True) if known else "; the pack declares no `vars:`"
            problems.append(Problem(node.lineno, f"unknown variable vars.{attr}{hint}"))
        elif scope == "rule" and attr not in RULE_FIELDS:
            problems.append(Problem(node.lineno, f"a rule has no field {attr!r}{_hint(attr, RULE_FIELDS, always=True)}"))
        elif scope in ("lead", "account", "deal", "event"):
            typo = _typo_of(attr, fields.event if scope == "event" else fields.records)
            if typo:
                problems.append(Problem(node.lineno, f"{scope}.{attr}: no such field; did you mean {scope}.{typo}? "
                                        f"(write {scope}[{attr!r}] if the record really has a field {attr!r})"))
    return problems


def _hint(name: str, known: Iterable[str], always: bool = False) -> str:
    choices = sorted(known)
    close = difflib.get_close_matches(name, choices, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known: {', '.join(choices)}" if always and len(choices) < 40 else ""


def _typo_of(name: str, known: Iterable[str]) -> str | None:
    """A known field one typo away (two for longer names): a transposition, a letter missing, extra or wrong."""

    if name in known:
        return None
    most = 1 if len(name) <= 5 else 2
    best = sorted((d, k) for k in known if abs(len(k) - len(name)) <= most and (d := _distance(name, k)) <= most)
    return best[0][1] if best else None


def _distance(a: str, b: str) -> int:
    """Optimal string alignment distance (Levenshtein with transpositions)."""

    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]
