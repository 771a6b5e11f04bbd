"""What `crmrules test` prints and writes: the pytest-style text, `--json`, `--junit FILE` (the JUnit XML that
CI systems read) and `--coverage`, the rules no case exercised (like `opa test --coverage`)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..language import ast
from .patterns import describe
from .suite import CaseResult
from .times import iso, show


@dataclass
class Coverage:
    pack: str
    rules: list[str]
    exercised: set[str] = field(default_factory=set)

    @property
    def missing(self) -> list[str]:
        return sorted(set(self.rules) - self.exercised)

    def line(self) -> str:
        done = len(self.rules) - len(self.missing)
        text = f"{self.pack}: {done} of {len(self.rules)} rules exercised"
        return text + (f"; not exercised: {', '.join(self.missing)}" if self.missing else "")


def coverage(pack: ast.Pack, results: list[CaseResult]) -> Coverage:
    """A rule is exercised when some case saw it decided: fired, shadow, or blocked by a guard. A rule only
    named in `expect_not` is not: no case shows it can fire."""

    return Coverage(pack.name, sorted(r.id for r in pack.rules), {rule for r in results for rule in r.exercised})


def trail_lines(result: CaseResult) -> list[str]:
    lines = []
    for decision, actions in result.trail:
        what = f" → {', '.join(h.kind for h in actions)}" if actions else ""
        lines.append(f"{show(decision.at, result.zone)} {decision.rule}: {decision.outcome}"
                     + (f" ({decision.reason})" if decision.reason else "") + what)
        for h in actions:
            if h.item is not None and (h.held or h.item.due_at > decision.at + 0.5 or h.status == "cancelled"):
                lines.append(f"    {describe(h, result.zone)}")
    return lines


def failure_text(result: CaseResult) -> str:
    lines = list(result.problems)
    if result.trail:
        lines += ["decision trail:"] + ["  " + line for line in trail_lines(result)]
    return "\n".join(lines)


def counts(results: list[CaseResult]) -> dict[str, int]:
    return {status: sum(r.status == status for r in results) for status in ("passed", "failed", "error")}


def as_json(results: list[CaseResult], covered: list[Coverage], seconds: float, zone: Any = None) -> str:
    """The results for scripts; times ISO 8601 in the display zone (`zone`, named as `explain --json` and
    `outbox list --json` name it), else each case's own."""

    n = counts(results)
    report: dict[str, Any] = {
        "zone": str(zone) if zone is not None else None,
        "summary": {"passed": n["passed"], "failed": n["failed"], "errors": n["error"], "seconds": round(seconds, 3)},
        "cases": [{
            "pack": r.pack, "file": r.file, "line": r.line, "name": r.name, "status": r.status,
            "problems": r.problems, "seconds": round(r.seconds, 4),
            "trail": [{"at": iso(d.at, r.zone), "rule": d.rule, "outcome": d.outcome, "reason": d.reason,
                       "actions": [h.kind for h in actions]} for d, actions in r.trail],
        } for r in results],
        "coverage": {c.pack: {"rules": len(c.rules), "exercised": sorted(c.exercised & set(c.rules)),
                              "not_exercised": c.missing} for c in covered},
    }
    return json.dumps(report, ensure_ascii=False, indent=2)


def write_junit(path: str | Path, results: list[CaseResult], seconds: float) -> None:
    """JUnit XML as Jenkins, GitLab and GitHub's test reporters read it: a suite per pack, a case per test; an
    expectation that did not hold is a `failure`, a case that could not be read or run an `error`."""

    n = counts(results)
    root = ET.Element("testsuites", name="crmrules", tests=str(len(results)), failures=str(n["failed"]),
                      errors=str(n["error"]), time=f"{seconds:.3f}")
    packs: dict[str, list[CaseResult]] = {}
    for r in results:
        packs.setdefault(r.pack, []).append(r)
    for pack, mine in packs.items():
        m = counts(mine)
        suite = ET.SubElement(root, "testsuite", name=pack, tests=str(len(mine)), failures=str(m["failed"]),
                              errors=str(m["error"]), skipped="0", time=f"{sum(r.seconds for r in mine):.3f}")
        for r in mine:
            case = ET.SubElement(suite, "testcase", name=r.name, classname=f"{pack}.{Path(r.file).stem}",
                                 file=r.file, line=str(r.line), time=f"{r.seconds:.3f}")
            if r.status != "passed":
                tag, kind = ("failure", "expectation") if r.status == "failed" else ("error", "invalid case")
                element = ET.SubElement(case, tag, message=r.problems[0] if r.problems else r.status, type=kind)
                element.text = failure_text(r)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tree.write(target, encoding="utf-8", xml_declaration=True)
