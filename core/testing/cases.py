"""A pack's test files read as strictly as the pack: every mistake at file:line:column, with a did-you-mean.

A case that cannot be read is reported and not run, so a misspelt key can never make a case pass by being
ignored (`outcom: blocked`), nor end in a traceback (`evnt:`). The shapes read here are in
docs/rule-language.md, "Tests beside the pack"; records and events are read in `given.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Collection, Mapping

from ..actions import ActionType
from ..language import RuleError, ast
from ..language.yamlmarks import MAX_BYTES, MarkedDict, MarkedList, TooLarge, YamlProblem, load_marked
from .given import Reader
from .patterns import ActionPattern, plain, read_pattern
from .shapes import CASE_KEYS, EXPECT_KEYS, OUTCOMES, Case, Expectation, Mark, TestFile


def test_files(pack: ast.Pack) -> list[Path]:
    root = Path(pack.path)
    folder = (root if root.is_dir() else root.parent) / "tests"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.y*ml"))


def read_test_file(file: Path, pack: ast.Pack, table: Mapping[str, ActionType],
                   sources: Collection[str] | None = None) -> TestFile:
    """Every case of one file; `sources` are the source names an event may come from (None: any)."""

    out = TestFile(str(file))
    try:
        if file.stat().st_size > MAX_BYTES:
            raise TooLarge(f"the file is over {MAX_BYTES / 1e6:g} MB; test files are read up to that", 1, 1)
        doc = load_marked(file.read_text(encoding="utf-8"))
    except YamlProblem as exc:
        out.errors.append(RuleError(str(file), exc.line, exc.column, "", str(exc)))
        return out
    except UnicodeDecodeError as exc:
        out.errors.append(RuleError(str(file), 1, 1, "", f"not UTF-8 text: {exc}"))
        return out
    except Exception as exc:  # yaml errors carry a mark
        mark = getattr(exc, "problem_mark", None)
        out.errors.append(RuleError(str(file), (mark.line + 1) if mark else 1, (mark.column + 1) if mark else 1, "",
                                    f"not valid YAML: {getattr(exc, 'problem', exc)}"))
        return out
    if not isinstance(doc, MarkedDict) or not isinstance(doc.get("tests"), list):
        out.errors.append(RuleError(str(file), 1, 1, "", "a test file has `tests:`, a list of cases"))
        return out
    for key in doc:
        if key != "tests":
            out.errors.append(RuleError(str(file), *doc.key_marks[key], str(key),
                                        "a test file has only `tests:`, a list of cases"))
    tests: MarkedList = doc["tests"]
    for i, raw in enumerate(tests):
        line = tests.item_marks[i][0]
        reader = _CaseReader(str(file), pack, table, f"tests[{i}]", sources)
        case = reader.case(raw, tests.item_marks[i], i)
        if reader.errors or case is None:
            reader.errors.sort(key=lambda e: (e.line, e.column))
            name = str(raw.get("name", f"case {i}")) if isinstance(raw, dict) else f"case {i}"
            out.broken.append((name, line, reader.errors))
        else:
            out.cases.append(case)
    return out


class _CaseReader(Reader):
    def case(self, raw: Any, mark: Mark, index: int) -> Case | None:
        if not isinstance(raw, MarkedDict):
            self.error(mark, self.path, "a case is a mapping with name, events and expect")
            return None
        self.keys(raw, CASE_KEYS, self.path, "a case")
        name = raw.get("name", f"case {index}")
        if not isinstance(name, (str, int, float)):
            self.error(raw.value_marks["name"], f"{self.path}.name", "a case's name is text")
        if "start" in raw:
            self.start = self.time(self.start, raw["start"], raw.value_marks["start"], f"{self.path}.start") \
                or self.start
        case = Case(self.file, mark[0], index, str(name), self.start)
        self.records(raw, case)
        self.events(raw, case)
        if raw.get("until") is not None:
            case.until = raw["until"]
            self.time(self.start, raw["until"], raw.value_marks["until"], f"{self.path}.until")
        self.expectations(raw, case)
        if not self.errors and not (case.nothing or case.expect or case.expect_not or case.no_actions
                                    or case.no_actions_at_all):
            self.error(mark, self.path, "this case expects nothing, so it cannot fail: say what should happen with "
                                        "`expect:`, `expect_not:` or `expect_no_actions:`")
        self.vars(raw, case)
        return case

    def vars(self, raw: MarkedDict, case: Case) -> None:
        if "vars" not in raw:
            return
        value, where = raw["vars"], f"{self.path}.vars"
        case.vars_mark = raw.value_marks["vars"]
        if not isinstance(value, MarkedDict):
            self.error(case.vars_mark, where, "`vars:` takes pack variables and values, e.g. {pricing_points: 60}")
            return
        known = sorted(self.pack.variables)
        for key in value:
            if key not in self.pack.variables:
                self.name_of(key, value.key_marks[key], where, known, "variable")
        case.vars = plain(value)

    # ---------------------------------------------------------------- records

    def expectations(self, raw: MarkedDict, case: Case) -> None:
        expect = raw.get("expect")
        where = f"{self.path}.expect"
        if isinstance(expect, str) and expect in ("nothing", "none"):
            case.nothing = True
        elif isinstance(expect, MarkedList):
            for n, item in enumerate(expect):
                exp = self.expectation(item, expect.item_marks[n], f"{where}[{n}]", case)
                if exp is not None:
                    case.expect.append(exp)
        elif expect is not None:
            self.error(raw.value_marks["expect"], where, "`expect:` is a list of `{rule: ..., ...}`, or `nothing`")
        if "expect_not" in raw:
            value, mark = raw["expect_not"], raw.value_marks["expect_not"]
            if isinstance(value, str):
                value, marks = [value], [mark]
            elif isinstance(value, MarkedList):
                marks = value.item_marks
            else:
                self.error(raw.key_marks["expect_not"], f"{self.path}.expect_not",
                           "`expect_not:` is a list of rule ids that must not fire, e.g. [cold-lead]; to say more "
                           "about a rule, write `expect: [{rule: r, times: 0}]`")
                value, marks = [], []
            for n, rule in enumerate(value):
                found = self.rule_id(rule, marks[n], f"{self.path}.expect_not[{n}]")
                if found:
                    case.expect_not.append(found)
        if "expect_no_actions" in raw:
            self.no_actions(raw, case)

    def no_actions(self, raw: MarkedDict, case: Case) -> None:
        value, mark, where = raw["expect_no_actions"], raw.value_marks["expect_no_actions"], \
            f"{self.path}.expect_no_actions"
        if value is True:
            case.no_actions_at_all = True
        elif isinstance(value, MarkedList) and value:
            case.no_actions = self.patterns(value, where)
        else:
            self.error(mark, where, "`expect_no_actions:` is `true` (no rule did anything) or a list of actions, "
                                    "e.g. [message, {tag: hot}]")

    def expectation(self, item: Any, mark: Mark, where: str, case: Case) -> Expectation | None:
        if not isinstance(item, MarkedDict):
            self.error(mark, where, "an expectation is `{rule: hot-lead, ...}`")
            return None
        self.keys(item, EXPECT_KEYS, where, "an expectation")
        if "rule" not in item:
            self.error(mark, where, "an expectation names its `rule:`")
            return None
        rule = self.rule_id(item["rule"], item.value_marks["rule"], f"{where}.rule")
        exp = Expectation(rule or "", line=mark[0])
        if "outcome" in item:
            outcome = item["outcome"]
            if outcome in OUTCOMES:
                exp.outcome = outcome
            else:
                self.name_of(outcome, item.value_marks["outcome"], f"{where}.outcome", list(OUTCOMES), "outcome")
        if "reason_contains" in item:
            exp.reason = str(item["reason_contains"])
        if "times" in item:
            times = item["times"]
            if isinstance(times, bool) or not isinstance(times, int) or times < 0:
                self.error(item.value_marks["times"], f"{where}.times", "`times:` is a whole number, 0 for never")
            else:
                exp.times = times
        if "about" in item:
            exp.about = self.name_of(item["about"], item.value_marks["about"], f"{where}.about",
                                     sorted(case.records), "record")
        for key in ("actions", "actions_not"):
            if key not in item:
                continue
            value = item[key]
            if not isinstance(value, MarkedList):
                self.error(item.value_marks[key], f"{where}.{key}", f"`{key}:` is a list, e.g. [{{tag: hot}}]")
                continue
            setattr(exp, key, self.patterns(value, f"{where}.{key}"))
        if exp.times == 0 and exp.actions:
            self.error(item.key_marks["actions"], f"{where}.actions",
                       "`times: 0` says the rule never did; it cannot have `actions:` (use `actions_not:`)")
        return exp if rule else None

    def patterns(self, items: MarkedList, where: str) -> list[ActionPattern]:
        out = []
        for n, item in enumerate(items):
            here = f"{where}[{n}]"

            def report(mark: Mark, message: str, here: str = here) -> None:
                self.error(mark, here, message)

            pattern = read_pattern(item, items.item_marks[n], self.table, self.start, report)
            if pattern is not None:
                out.append(pattern)
        return out
