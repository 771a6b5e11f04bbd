"""YAML rule packs → `ast.Pack`, collecting every error with its file, line and column.

The entry point, and a pack's skeleton: its top-level keys, `vars:` (with a deployment's overrides),
`segments:`, templates/ and each rule's own fields. What those fields hold is read by conditions.py (with
properties.py), actions.py, guards.py, calendar.py and scoring.py. Reference: docs/rule-language.md. Nothing
is silently ignored: an unknown key is an error that names the keys that are allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..actions import ActionType, builtin_table
from ..models import stable_hash
from ..templates import EVENT_FIELDS, RECORD_FIELDS, Fields, check_template
from . import ast
from .actions import Actions
from .calendar import read_calendar
from .conditions import SCOPES, Conditions
from .context import ParseContext, join_path, report_unknown_keys
from .errors import PackError, RuleError, VarsOrigin
from .limits import engine_problems
from .guards import read_limit, read_message_policy, read_per
from .properties import TestFunctions
from .scoring import read_decay
from .values import read_duration
from .yamlmarks import MAX_BYTES, MarkedDict, MarkedList, YamlProblem, load_marked

PACK_KEYS = {"pack", "description", "vars", "segments", "rules", "calendar", "messages", "scoring", "locale"}
RULE_KEYS = {"id", "description", "owner", "mode", "priority", "group", "about", "when", "then", "limit",
             "cooldown", "goal", "per"}
_VAR = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


def _substitute(ctx: ParseContext, node: Any, variables: dict[str, Any], path: str, parent: Any = None,
                key: Any = None) -> Any:
    """Replace ${name} with the pack variable; a whole-value reference keeps the variable's type."""

    if isinstance(node, MarkedDict):
        for k in list(node):
            node[k] = _substitute(ctx, node[k], variables, join_path(path, k), node, k)
        return node
    if isinstance(node, MarkedList):
        for i, item in enumerate(node):
            node[i] = _substitute(ctx, item, variables, join_path(path, i), node, i)
        return node
    if isinstance(node, str) and "${" in node:
        whole = _VAR.fullmatch(node.strip())
        names = _VAR.findall(node)
        missing = [n for n in names if n not in variables]
        if missing:
            close = difflib.get_close_matches(missing[0], list(variables), n=1)
            hint = f"; did you mean ${{{close[0]}}}?" if close else "; declare it under `vars:`"
            ctx.error(parent, key, path, f"unknown variable ${{{missing[0]}}}{hint}")
            return node
        if whole:
            if whole.group(1) in ctx.overridden:
                ctx.note_override(parent, key, whole.group(1), variables[whole.group(1)], None)
            return variables[whole.group(1)]
        text = _VAR.sub(lambda m: str(variables[m.group(1)]), node)
        for name in names:
            if name in ctx.overridden:
                ctx.note_override(parent, key, name, text, node)
                break
        return text
    return node


def _templates(pack_dir: Path | None, errors: list[RuleError]) -> dict[tuple[str, str], ast.Template]:
    """templates/<name>.<locale>.txt; an optional first line `Subject: ...`. Their text is checked by
    `_check_templates`, with the rest of the pack's templates."""

    found: dict[tuple[str, str], ast.Template] = {}
    if pack_dir is None or not (pack_dir / "templates").is_dir():
        return found
    for file in sorted((pack_dir / "templates").glob("*.txt")):
        parts = file.name[:-4].rsplit(".", 1)
        if len(parts) != 2:
            errors.append(RuleError(str(file), 1, 1, "", "name templates <name>.<locale>.txt, e.g. welcome.ko.txt"))
            continue
        if file.stat().st_size > MAX_BYTES:
            errors.append(RuleError(str(file), 1, 1, "", f"the file is over {MAX_BYTES / 1e6:g} MB"))
            continue
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            errors.append(RuleError(str(file), 1, 1, "", f"not UTF-8 text: {exc}"))
            continue
        subject, body = "", text
        first, _, rest = text.partition("\n")
        if first.lower().startswith("subject:"):
            subject, body = first.split(":", 1)[1].strip(), rest.lstrip("\n")
        found[(parts[0], parts[1])] = ast.Template(subject, body.rstrip("\n"), str(file))
    return found


def _template_fields(pack: ast.Pack, doc: MarkedDict) -> Fields:
    """What the pack's templates may read: the record fields every record has or the pack itself names (in
    conditions, `per:` and `set:`), the event properties its conditions name, and its variables."""

    records: set[str] = set(RECORD_FIELDS)
    event: set[str] = set(EVENT_FIELDS)

    def walk(node: Any) -> None:
        if isinstance(node, ast.Check):
            (event if node.scope == "event" else records).add(node.name)
        elif isinstance(node, ast.EventFilter):
            event.update(c.name for c in node.where)
            return
        elif isinstance(node, (ast.Tally, ast.Sequence, ast.Absence)):
            event.update(node.same)
            if isinstance(node, ast.Tally) and node.sum_of:
                event.add(node.sum_of)
        elif isinstance(node, ast.PerKey):
            (event if node.scope == "event" else records).add(node.name)
        elif isinstance(node, ast.ActionSpec):
            if node.kind == "set" and isinstance(node.fields.get("properties"), dict):
                records.update(str(k) for k in node.fields["properties"])
            return
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            for f in dataclasses.fields(node):
                walk(getattr(node, f.name))
        elif isinstance(node, (tuple, list)):
            for item in node:
                walk(item)

    walk(pack.rules)
    return Fields(frozenset(records), frozenset(event), frozenset(str(k) for k in pack.variables))


def _check_templates(ctx: ParseContext, pack: ast.Pack, doc: MarkedDict) -> None:
    """Every template of the pack checked against what it may read, each problem at its line in the file."""

    fields = _template_fields(pack, doc)
    for container, key, path, text in ctx.templates:
        for problem in check_template(text, fields):
            ctx.template_error(container, key, path, problem.line, problem.message)
    for template in pack.templates.values():
        try:
            lines = Path(template.file).read_text(encoding="utf-8").split("\n")
        except OSError:
            lines = []
        body_at = 1
        if template.subject:  # the body starts after `Subject:` and the blank lines below it
            body_at = 2
            while body_at <= len(lines) and not lines[body_at - 1].strip():
                body_at += 1
        for text, offset in ((template.subject, 0), (template.body, body_at - 1)):
            for problem in check_template(text, fields):
                ctx.errors.append(RuleError(template.file, offset + problem.line if text is template.body else 1,
                                            1, "", f"template error: {problem.message}"))


def parse_pack_text(text: str, file: str, pack_dir: Path | None = None, overrides: dict[str, Any] | None = None,
                    action_types: Mapping[str, ActionType] | None = None,
                    condition_functions: TestFunctions | None = None,
                    origin: VarsOrigin | None = None) -> ast.Pack:
    """Parse one pack file's text. Raises PackError with every error found; with `origin`, a bad override is
    reported where the deployment wrote it."""

    errors: list[RuleError] = []
    ctx = ParseContext(file, errors)
    try:
        doc = load_marked(text)
    except YamlProblem as exc:
        raise PackError([RuleError(file, exc.line, exc.column, "", str(exc))]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = getattr(exc, "problem", None) or str(exc)
        raise PackError([RuleError(file, line, col, "", f"not valid YAML: {problem}")]) from None
    if not isinstance(doc, MarkedDict):
        raise PackError([RuleError(file, 1, 1, "", "a pack is a mapping with `rules:` (and optionally pack, vars, segments)")])
    report_unknown_keys(ctx, doc, PACK_KEYS, "")

    name = str(doc.get("pack") or (pack_dir.name if pack_dir else Path(file).stem))
    pack = ast.Pack(name=name, path=str(pack_dir or file), description=str(doc.get("description", "")))
    pack.default_locale = str(doc.get("locale", "ko"))

    variables: dict[str, Any] = {}
    if "vars" in doc:
        if isinstance(doc["vars"], MarkedDict):
            variables = dict(doc["vars"])
        else:
            ctx.error(doc, "vars", "vars", "`vars:` is a mapping of names to values")
    ctx.pack, ctx.origin = name, origin
    for key in (overrides or {}):
        if key not in variables:
            if origin is not None:
                close = difflib.get_close_matches(str(key), list(variables), n=1)
                hint = (f"did you mean {close[0]!r}?" if close else
                        f"it declares {', '.join(sorted(variables))}" if variables else "it declares none")
                errors.append(origin.error((name, str(key)), f"unknown variable of pack {name}; {hint}"))
            else:
                errors.append(RuleError(file, 1, 1, f"vars.{key}", f"override for unknown variable {key!r}; the pack declares: {', '.join(sorted(variables)) or 'none'}"))
    ctx.overridden = {k for k in (overrides or {}) if k in variables}
    variables.update(overrides or {})
    pack.variables = variables
    for key in [k for k in doc if k != "vars"]:
        doc[key] = _substitute(ctx, doc[key], variables, key, doc, key)

    pack.templates = _templates(pack_dir, errors)
    segments: dict[str, tuple[Any, str]] = {}
    if "segments" in doc:
        if isinstance(doc["segments"], MarkedDict):
            segments = {str(k): (doc["segments"], k) for k in doc["segments"]}
        else:
            ctx.error(doc, "segments", "segments", "`segments:` maps names to conditions")
    conditions = Conditions(ctx, segments, condition_functions)
    for seg in segments:  # check every segment even when no rule uses it yet
        conditions.parse(doc["segments"], seg, f"segments.{seg}")

    _pack_settings(ctx, doc, pack)

    rules = doc.get("rules")
    if not isinstance(rules, MarkedList):
        ctx.error(doc, "rules" if "rules" in doc else None, "rules", "a pack needs `rules:`, a list of rules")
        raise PackError(errors)
    actions = Actions(ctx, action_types if action_types is not None else builtin_table(), pack.templates)
    seen: dict[str, int] = {}
    for i, raw in enumerate(rules):
        # ids first, so a duplicate is reported together with whatever else is wrong in either rule
        duplicate = False
        if isinstance(raw, MarkedDict) and "id" in raw:
            rule_id = str(raw["id"])
            if rule_id in seen:
                ctx.error(raw, "id", f"rules[{i}].id", f"rule id {rule_id!r} is already used at line {seen[rule_id]}")
                duplicate = True
            else:
                seen[rule_id] = ctx.line(rules, i)
        rule = _rule(ctx, rules, i, pack, conditions, actions)
        if rule is not None and not duplicate:
            pack.rules.append(rule)
    _check_templates(ctx, pack, doc)
    if errors:
        raise PackError(errors)
    return pack


def _pack_settings(ctx: ParseContext, doc: MarkedDict, pack: ast.Pack) -> None:
    if isinstance(doc.get("calendar"), MarkedDict):
        pack.calendar = read_calendar(ctx, doc["calendar"])
    if isinstance(doc.get("messages"), MarkedDict):
        pack.messages = read_message_policy(ctx, doc["messages"], pack.calendar.timezone)
    if isinstance(doc.get("scoring"), MarkedDict):
        decay = read_decay(ctx, doc["scoring"])
        if decay is not None:
            pack.decay = decay


def _rule(ctx: ParseContext, rules: MarkedList, i: int, pack: ast.Pack, conditions: Conditions,
          actions: Actions) -> ast.Rule | None:
    raw = rules[i]
    path = f"rules[{i}]"
    if not isinstance(raw, MarkedDict):
        ctx.error(rules, i, path, "a rule is a mapping with id, when and then")
        return None
    n_errors = len(ctx.errors)
    report_unknown_keys(ctx, raw, RULE_KEYS, path)
    for required in ("id", "when", "then"):
        if required not in raw:
            ctx.error(rules, i, path, f"a rule needs `{required}:`")
    if any(k not in raw for k in ("id", "when", "then")):
        return None
    rule_id = str(raw["id"])
    if not _ID.match(rule_id):
        ctx.error(raw, "id", f"{path}.id", f"{rule_id!r}: ids are lower-case letters, digits, -, _ and . (e.g. hot-lead)")
    mode = str(raw.get("mode", "enabled"))
    if mode not in ("enabled", "disabled", "shadow"):
        ctx.error(raw, "mode", f"{path}.mode", f"mode is enabled, disabled or shadow; got {mode!r}")
    about = str(raw.get("about", "lead"))
    if about not in SCOPES:
        ctx.error(raw, "about", f"{path}.about", f"a rule is about a lead, account or deal; got {about!r}")
    priority = raw.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        ctx.error(raw, "priority", f"{path}.priority", f"priority is a whole number (higher wins); got {priority!r}")
        priority = 0
    when = conditions.parse(raw, "when", f"{path}.when")
    goal = conditions.parse(raw, "goal", f"{path}.goal") if "goal" in raw else None
    if when is not None:  # the engine matches `when:`; a goal is evaluated by the host
        for problem in engine_problems(when):
            ctx.error(raw, "when", f"{path}.when", problem)
    then = actions.parse(raw, "then", f"{path}.then")
    limit = read_limit(ctx, raw, path)
    cooldown = read_duration(ctx, raw, "cooldown", f"{path}.cooldown") if "cooldown" in raw else None
    per = read_per(ctx, raw, path, limit, cooldown)
    if len(ctx.errors) > n_errors or when is None or limit is None:
        return None
    version = stable_hash(pack.name, _plain(raw), length=12)
    return ast.Rule(
        id=rule_id, pack=pack.name, about=about, description=str(raw.get("description", "")),
        owner=str(raw.get("owner", "")), mode=mode, priority=priority,
        group=str(raw["group"]) if raw.get("group") else None, when=when, then=tuple(then), limit=limit,
        cooldown=cooldown, goal=goal, version=version, file=ctx.file, line=ctx.line(rules, i), per=per,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
