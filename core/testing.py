"""Rule tests that ship beside the packs (`crmrules test`), in the spirit of `opa test`.

A test file (`<pack>/tests/*.yaml`) gives a lead, timed events and what should (and should not) happen:

    tests:
      - name: two pricing views six days apart
        lead: {email: kim@example.com, first_name: 유진, last_name: 김, email_opt_in: true}
        events:
          - {at: +0d, event: page_view, path: /pricing}
          - {at: +6d, event: page_view, path: /pricing}
        expect:
          - rule: hot-lead
            actions: [{tag: hot}]
        expect_not: [cold-lead]

`at` is an offset from `start` (default 2026-01-05T09:00:00+09:00, a Monday in Seoul) or an ISO time with a
zone. Other keys of an event are its properties; `update: {...}` instead of `event:` changes record fields.
`until` moves the clock on after the last event so that waiting rules (absence, delays) can fire.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .actions import ActionType
from .language import PackError, RuleError, ast
from .language.durations import parse_duration
from .language.yamlmarks import DuplicateKey, MarkedDict, load_marked
from .models import Decision, Event
from .clock import ManualClock
from .pipeline import Pipeline
from .store import SQLiteStore

DEFAULT_START = "2026-01-05T09:00:00+09:00"
TEST_KEYS = {"name", "lead", "account", "deal", "start", "events", "until", "expect", "expect_not", "vars"}


@dataclass
class CaseResult:
    file: str
    name: str
    line: int
    ok: bool
    problems: list[str] = field(default_factory=list)
    trail: list[Decision] = field(default_factory=list)


def test_files(pack: ast.Pack) -> list[Path]:
    root = Path(pack.path)
    folder = (root if root.is_dir() else root.parent) / "tests"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.y*ml"))


def _when(start: dt.datetime, value: Any) -> dt.datetime:
    text = str(value).strip()
    if text.startswith(("+", "-")):
        seconds = float(parse_duration(text[1:]))
        return start + dt.timedelta(seconds=seconds if text[0] == "+" else -seconds)
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; write e.g. {text}+09:00")
    return parsed


def _ref(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    ids = {k: str(v) for k, v in record.items() if k in ("email", "hubspot_id", "salesforce_id", "anonymous_id", "id")}
    if not ids:
        ids = {"email": f"{kind}@test.invalid"}
    return {"kind": kind, "ids": ids}


def _events(case: dict[str, Any], start: dt.datetime, index: int) -> list[Event]:
    events: list[Event] = []
    subjects = {}
    for kind in ("lead", "account", "deal"):
        if isinstance(case.get(kind), dict):
            subjects[kind] = _ref(kind, case[kind])
            fields = {k: v for k, v in case[kind].items()}
            events.append(Event.model_validate({
                "id": f"t{index}-given-{kind}", "source": "test", "type": "record_update",
                "occurred_at": start - dt.timedelta(seconds=1), "subject": subjects[kind], "properties": fields}))
    default_kind = next(iter(subjects), "lead")
    for n, raw in enumerate(case.get("events") or []):
        if not isinstance(raw, dict) or ("event" not in raw and "update" not in raw):
            raise ValueError(f"events[{n}]: write `{{at: +1d, event: page_view, ...}}` or `{{at: +1d, update: {{...}}}}`")
        raw = dict(raw)
        at = _when(start, raw.pop("at", "+0s"))
        kind = raw.pop("about", default_kind)
        subject = subjects.get(kind) or {"kind": kind, "ids": {"email": f"{kind}@test.invalid"}}
        if "lead" in raw and isinstance(raw["lead"], str):
            subject = {"kind": "lead", "ids": {"email": raw.pop("lead")}}
        related = [v for k, v in subjects.items() if k != subject["kind"]]
        if "update" in raw:
            etype, props = "record_update", dict(raw.pop("update"))
        else:
            etype = str(raw.pop("event"))
            props = raw
        events.append(Event.model_validate({"id": f"t{index}-{n}", "source": "test", "type": etype, "occurred_at": at,
                                            "subject": subject, "related": related, "properties": props}))
    return events


def _action_matches(expected: Any, got: Any, table: Mapping[str, ActionType]) -> bool:
    """Whether `got` is the action a case expects, as the action's type recognises its own kind."""

    if not isinstance(expected, dict) or len(expected) != 1:
        return False
    (kind, want), = expected.items()
    action_type = table.get(kind)
    if action_type is None:
        return False
    if isinstance(want, dict) and "after" in want:
        want = {**want, "after": float(parse_duration(want["after"]))}
    return action_type.matches(want, got)


def _describe_action(action: Any) -> str:
    data = action.model_dump(exclude_none=True, exclude_defaults=True)
    data.pop("type", None)
    name = action.name if action.type == "custom" else action.type
    return f"{name}: {data}"


def run_case(packs: list[ast.Pack], file: str, case: dict[str, Any], line: int, index: int) -> CaseResult:
    name = str(case.get("name", f"case {index}"))
    result = CaseResult(file, name, line, True)
    start = _when(dt.datetime.now(dt.timezone.utc), case.get("start", DEFAULT_START))
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "test.sqlite")
        try:
            pipeline = Pipeline(store, packs, clock=ManualClock(start.timestamp()))
            events = _events(case, start, index)
            last = max((e.occurred_at for e in events), default=start)
            until = _when(last, case["until"]) if case.get("until") else None
            pipeline.replay(events, until=until.timestamp() if until else None)
            decisions = store.all_decisions()
        finally:
            store.close()
    result.trail = decisions
    table = {spec.kind: spec.action for pack in packs for rule in pack.rules for spec in rule.then}
    fired = [d for d in decisions if d.outcome in ("fired", "shadow")]
    expected = case.get("expect") or []
    if expected == "nothing" or expected == "none":
        expected = []
        if fired:
            result.problems.append("expected nothing to fire; got " + ", ".join(d.rule for d in fired))
    for exp in expected:
        rule = exp.get("rule")
        outcome = exp.get("outcome", "fired")
        times = exp.get("times")
        mine = [d for d in decisions if d.rule == rule and d.outcome == outcome]
        if outcome == "blocked" and exp.get("reason_contains"):
            mine = [d for d in mine if str(exp["reason_contains"]) in d.reason]
        if not mine:
            others = [f"{d.outcome}{' (' + d.reason + ')' if d.reason else ''}" for d in decisions if d.rule == rule]
            result.problems.append(f"expected {rule} to be {outcome}; got {', '.join(others) or 'no decision at all'}")
            continue
        if times is not None and len(mine) != int(times):
            result.problems.append(f"expected {rule} {outcome} {times} time(s); got {len(mine)}")
        actions = [a for d in mine for a in d.actions]
        for want in exp.get("actions") or []:
            if not any(_action_matches(want, a, table) for a in actions):
                got = "; ".join(_describe_action(a) for a in actions) or "no actions"
                result.problems.append(f"{rule}: expected action {want}; got {got}")
    for rule in case.get("expect_not") or []:
        bad = [d for d in fired if d.rule == rule]
        if bad:
            result.problems.append(f"expected {rule} not to fire; it fired at "
                                   + ", ".join(dt.datetime.fromtimestamp(d.at, dt.timezone.utc).isoformat() for d in bad))
    result.ok = not result.problems
    return result


def load_cases(file: Path) -> tuple[list[tuple[dict[str, Any], int]], list[RuleError]]:
    try:
        doc = load_marked(file.read_text(encoding="utf-8"))
    except DuplicateKey as exc:
        return [], [RuleError(str(file), exc.line, exc.column, "", str(exc))]
    except Exception as exc:  # yaml errors carry a mark
        mark = getattr(exc, "problem_mark", None)
        return [], [RuleError(str(file), (mark.line + 1) if mark else 1, (mark.column + 1) if mark else 1, "",
                              f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    if not isinstance(doc, MarkedDict) or not isinstance(doc.get("tests"), list):
        return [], [RuleError(str(file), 1, 1, "", "a test file has `tests:`, a list of cases")]
    cases, errors = [], []
    for i, case in enumerate(doc["tests"]):
        line = doc["tests"].item_marks[i][0]
        if not isinstance(case, MarkedDict):
            errors.append(RuleError(str(file), line, 1, f"tests[{i}]", "a case is a mapping with name, events, expect"))
            continue
        unknown = set(case) - TEST_KEYS
        if unknown:
            errors.append(RuleError(str(file), line, 1, f"tests[{i}]",
                                    f"unknown field(s) {sorted(unknown)}; allowed: {', '.join(sorted(TEST_KEYS))}"))
            continue
        cases.append((_plain(case), line))
    return cases, errors


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def run_pack_tests(pack: ast.Pack, all_packs: list[ast.Pack], reload: Any = None) -> list[CaseResult]:
    """Run a pack's tests against that pack alone (tests say what *this* pack does)."""

    results: list[CaseResult] = []
    for file in test_files(pack):
        cases, errors = load_cases(file)
        for err in errors:
            results.append(CaseResult(str(file), "(file)", err.line, False, [str(err)]))
        for index, (case, line) in enumerate(cases):
            packs = [pack]
            if case.get("vars") and reload is not None:
                try:
                    packs = [reload(pack, case["vars"])]
                except PackError as exc:
                    results.append(CaseResult(str(file), str(case.get("name")), line, False, [str(exc)]))
                    continue
            try:
                results.append(run_case(packs, str(file), case, line, index))
            except Exception as exc:
                results.append(CaseResult(str(file), str(case.get("name", index)), line, False,
                                          [f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=3)]))
    return results
