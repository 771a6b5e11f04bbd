"""A pack's tests as `crmrules test` and `crmrules check` see them: every file read strictly, every readable
case run against the pack alone (tests say what *this* pack does), a case with `vars:` against the pack
reloaded with them."""

from __future__ import annotations

import datetime as dt
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Literal, Mapping

from ..actions import ActionType
from ..language import PackError, RuleError, ast
from ..models import Decision
from .cases import read_test_file, test_files
from .shapes import Case
from .patterns import Happened
from .run import run_case
from .verdict import exercised, problems

Reload = Callable[[ast.Pack, dict[str, Any]], ast.Pack]
Status = Literal["passed", "failed", "error"]


@dataclass
class CaseResult:
    pack: str
    file: str
    name: str
    line: int
    status: Status
    problems: list[str] = field(default_factory=list)
    trail: list[tuple[Decision, list[Happened]]] = field(default_factory=list)
    seconds: float = 0.0
    exercised: set[str] = field(default_factory=set)
    zone: dt.tzinfo | None = None

    @property
    def ok(self) -> bool:
        return self.status == "passed"


@dataclass
class Checked:
    """What `crmrules check` says of one pack's tests."""

    files: int = 0
    cases: int = 0
    errors: list[RuleError] = field(default_factory=list)


def _with_vars(case: Case, pack: ast.Pack, reload: Reload | None) -> ast.Pack:
    if not case.vars or reload is None:
        return pack
    return reload(pack, case.vars)


def _vars_errors(case: Case, exc: PackError) -> list[RuleError]:
    """A case's `vars:` the pack refuses, reported at the case's `vars:` with where the pack uses them."""

    return [RuleError(case.file, case.vars_mark[0], case.vars_mark[1], f"tests[{case.index}].vars",
                      f"{err.message} (the pack at {err.file}:{err.line}:{err.column})") for err in exc.errors]


def check_pack_tests(pack: ast.Pack, table: Mapping[str, ActionType], reload: Reload | None = None,
                     sources: Collection[str] | None = None) -> Checked:
    checked = Checked()
    for file in test_files(pack):
        read = read_test_file(file, pack, table, sources)
        checked.files += 1
        checked.cases += len(read.cases) + len(read.broken)
        checked.errors += read.all_errors()
        for case in read.cases:
            try:
                _with_vars(case, pack, reload)
            except PackError as exc:
                checked.errors += _vars_errors(case, exc)
    return checked


def run_pack_tests(pack: ast.Pack, table: Mapping[str, ActionType], reload: Reload | None = None,
                   keyword: str | None = None, sources: Collection[str] | None = None,
                   zone: dt.tzinfo | None = None) -> list[CaseResult]:
    """Run a pack's cases; times in what they print are in `zone` (the display zone), else each case's own."""

    results: list[CaseResult] = []
    for file in test_files(pack):
        read = read_test_file(file, pack, table, sources)
        for err in read.errors:
            results.append(CaseResult(pack.name, str(file), "(file)", err.line, "error", [str(err)]))
        for name, line, errors in read.broken:
            if keyword is None or keyword in name:
                results.append(CaseResult(pack.name, str(file), name, line, "error", [str(e) for e in errors]))
        for case in read.cases:
            if keyword is None or keyword in case.name:
                results.append(_run(case, pack, reload, dict(table), zone))
    return results


def _run(case: Case, pack: ast.Pack, reload: Reload | None, table: dict[str, Any],
         zone: dt.tzinfo | None = None) -> CaseResult:
    result = CaseResult(pack.name, case.file, case.name, case.line, "passed", zone=zone or case.start.tzinfo)
    started = time.perf_counter()
    try:
        packs = [_with_vars(case, pack, reload)]
    except PackError as exc:
        result.status, result.problems = "error", [str(e) for e in _vars_errors(case, exc)]
        return result
    try:
        run = run_case(case, packs)
    except Exception as exc:  # the engine failing on a case is a bug to show, not a reason to stop the others
        result.status = "error"
        result.problems = [f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=3)]
        return result
    finally:
        result.seconds = time.perf_counter() - started
    result.trail = [(d, run.happened.get(d.id, [])) for d in run.decisions]
    result.exercised = exercised(run)
    result.problems = problems(case, run, result.zone)
    result.status = "failed" if result.problems else "passed"
    return result
