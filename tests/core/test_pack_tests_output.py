"""`crmrules test` for CI and scripts: `--junit FILE` (JUnit XML), `--json`, and `--coverage`, the rules no
case exercises (issue 16, what to build: output, and a report like `opa test --coverage` / promtool's)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from .packtests import crmrules, write_pack


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


CASES = """
tests:
  - name: 가입하면 환영 전화
    lead: {email: kim@example.com, first_name: 유진, last_name: 김}
    events: [{at: +0d, event: signup}]
    expect: [{rule: welcome, actions: [{task: {title: 김유진 환영 전화}}]}]
  - name: two views make a hot lead
    lead: {email: kim@example.com}
    events: [{at: +0d, event: page_view}, {at: +1d, event: page_view}]
    expect: [{rule: hot}]
  - name: a wrong expectation
    lead: {email: kim@example.com}
    events: [{at: +0d, event: page_view}, {at: +1h, event: signup}]
    expect: [{rule: hot}]
"""


def test_junit_report(tmp_path):
    folder = write_pack(tmp_path, CASES)
    report = tmp_path / "out" / "junit.xml"
    out = crmrules("test", "--junit", str(report), str(folder))
    assert out.exit_code == 1, out.output
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "0")
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "shop"
    cases = suite.findall("testcase")
    names = [c.get("name") for c in cases]
    assert names == ["가입하면 환영 전화", "two views make a hot lead", "a wrong expectation"]
    assert cases[0].get("classname") == "shop.cases"
    assert cases[0].get("file") == str(folder / "tests" / "cases.yaml") and cases[0].get("line") == "3"
    assert cases[0].find("failure") is None
    failure = cases[2].find("failure")
    assert failure is not None
    assert "expected hot to be fired" in failure.get("message", "")
    assert "decision trail" in (failure.text or "")


def test_junit_report_marks_an_invalid_case_as_an_error(tmp_path):
    folder = write_pack(tmp_path, CASES.replace("expect: [{rule: hot}]\n  - name: a wrong", "expect: [{rule: hott}]\n"
                                                "  - name: a wrong"))
    report = tmp_path / "junit.xml"
    out = crmrules("test", "--junit", str(report), str(folder))
    assert out.exit_code == 1, out.output
    root = ET.parse(report).getroot()
    assert (root.get("failures"), root.get("errors")) == ("1", "1")
    error = root.find("testsuite/testcase[@name='two views make a hot lead']/error")
    assert error is not None and "did you mean 'hot'" in error.get("message", "")


def test_json_report(tmp_path):
    folder = write_pack(tmp_path, CASES)
    out = crmrules("test", "--json", str(folder))
    assert out.exit_code == 1
    report = json.loads(out.stdout)
    assert report["summary"] == {"passed": 2, "failed": 1, "errors": 0, "seconds": report["summary"]["seconds"]}
    names = [(c["pack"], c["name"], c["status"]) for c in report["cases"]]
    assert names == [("shop", "가입하면 환영 전화", "passed"), ("shop", "two views make a hot lead", "passed"),
                     ("shop", "a wrong expectation", "failed")]
    failed = report["cases"][2]
    assert failed["line"] == 11 and failed["file"].endswith("cases.yaml")
    assert any("expected hot to be fired" in p for p in failed["problems"])
    trail = report["cases"][0]["trail"]
    assert [(d["rule"], d["outcome"]) for d in trail] == [("welcome", "fired"), ("nurture", "fired")]
    assert trail[0]["at"] == "2026-01-05T09:00:00+09:00" and trail[0]["actions"] == ["tag", "task"]
    assert report["coverage"]["shop"]["not_exercised"] == ["answer", "crm-note", "returning", "vip-contact"]


def test_coverage_lists_rules_no_case_fires_or_blocks(tmp_path):
    folder = write_pack(tmp_path, CASES)
    out = crmrules("test", "--coverage", str(folder))
    assert "shop: 3 of 7 rules exercised; not exercised: answer, crm-note, returning, vip-contact" \
        in out.output, out.output
    summary = out.output.strip().splitlines()[-1]
    assert "4 rule(s) not exercised" in summary


def test_coverage_counts_a_blocked_decision(tmp_path):
    """A rule a case only sees blocked (its guard) is exercised; one it only names in `expect_not` is not."""

    folder = write_pack(tmp_path, """
        tests:
          - name: views
            lead: {email: kim@example.com}
            events: [{at: +0d, event: page_view}, {at: +1d, event: page_view}, {at: +2d, event: page_view}]
            expect: [{rule: hot, outcome: blocked}]
            expect_not: [welcome]
        """)
    out = crmrules("test", "--coverage", str(folder))
    assert out.exit_code == 0, out.output
    assert "shop: 2 of 7 rules exercised" in out.output  # hot (fired, then blocked) and returning
    assert "welcome" in out.output.split("not exercised:")[1]
