"""Issue 16, "Tests:" findings: a pack's test file is read as strictly as the pack itself.

Each test names the finding it covers. A mistake in a test file is an error at file:line:column with a "did
you mean", from `crmrules test` and from `crmrules check` alike, never a vacuous pass or a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from .packtests import crmrules, write_pack


def where(folder: Path, text: str, name: str = "cases.yaml") -> str:
    """`file:line:column` of the first place `text` appears in the test file."""

    file = folder / "tests" / name
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if text in line:
            return f"{file}:{number}:{line.index(text) + 1}"
    raise AssertionError(f"{text!r} not in {file}")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no crmrules.yaml of the repository's is read


def _case(expect: str, events: str = "[{at: +0d, event: signup}]", extra: str = "") -> str:
    return f"""
        tests:
          - name: one case
            lead: {{email: kim@example.com, first_name: 유진, last_name: 김}}
            events: {events}
            {expect}
            {extra}
        """


@pytest.mark.parametrize("item, misspelt, meant", [
    ("{rule: welcome, outcom: blocked}", "outcom", "outcome"),
    ("{rule: welcome, reson_contains: limit}", "reson_contains", "reason_contains"),
    ("{rule: welcome, actions: [{tag: new}], actoins_not: [{tag: new}]}", "actoins_not", "actions_not"),
])
def test_a_misspelt_expectation_key_is_a_located_error(tmp_path, item, misspelt, meant):
    """Finding: an expectation with a misspelt key (`outcom: blocked`, `reson_contains:`) is ignored, so the
    case passes vacuously. Now it is an error at the key, with a did-you-mean, and the case does not pass."""

    folder = write_pack(tmp_path, _case(f"expect: [{item}]"))
    out = crmrules("test", str(folder))
    assert out.exit_code == 1, out.output
    assert f"{where(folder, misspelt)}: " in out.output
    assert f"did you mean '{meant}'" in out.output
    assert "1 passed" not in out.output


def test_expect_not_with_an_unknown_rule_is_an_error_naming_the_known_ones(tmp_path):
    """Finding: `expect_not` with an unknown rule id passes silently."""

    folder = write_pack(tmp_path, _case("expect_not: [nurtur]"))
    out = crmrules("test", str(folder))
    assert out.exit_code == 1, out.output
    assert f"{where(folder, 'nurtur')}: " in out.output
    assert "did you mean 'nurture'" in out.output
    assert "answer, crm-note, hot, nurture, returning, vip-contact, welcome" in out.output


def test_expect_not_written_as_a_mapping_is_an_error(tmp_path):
    """Finding: `expect_not` written as a mapping passes silently (its keys were taken for rule ids)."""

    folder = write_pack(tmp_path, _case("expect_not: {rule: welcome}"))
    out = crmrules("test", str(folder))
    assert out.exit_code == 1, out.output
    assert f"{where(folder, 'expect_not')}: " in out.output
    assert "list of rule ids" in out.output


def test_an_unknown_rule_in_expect_is_an_error_naming_the_known_ones(tmp_path):
    """Finding (what to build): unknown rule ids in `expect` are errors naming the known ones."""

    folder = write_pack(tmp_path, _case("expect: [{rule: welcom}]"))
    out = crmrules("test", str(folder))
    assert out.exit_code == 1, out.output
    assert f"{where(folder, 'welcom}')}: " in out.output
    assert "did you mean 'welcome'" in out.output
    assert "hot, nurture" in out.output


def test_times_zero_means_never(tmp_path):
    """Finding: `{…, times: 0}` can never pass. Now it means "never": it passes when the rule never fired and
    fails when it did."""

    never = write_pack(tmp_path / "a", _case("expect: [{rule: hot, times: 0}, {rule: welcome, times: 1}]"))
    out = crmrules("test", str(never))
    assert out.exit_code == 0, out.output
    assert "1 passed" in out.output

    fired = write_pack(tmp_path / "b", _case("expect: [{rule: welcome, times: 0}]"))
    out = crmrules("test", str(fired))
    assert out.exit_code == 1, out.output
    assert "expected welcome to be fired 0 times; it was fired 1 time" in out.output


def test_a_misspelt_event_key_is_a_located_error_not_a_traceback(tmp_path):
    """Finding: a misspelt event key (`evnt:`) ends in a Python traceback."""

    folder = write_pack(tmp_path, _case("expect: [{rule: welcome}]", events="[{at: +0d, evnt: signup}]"))
    for command in ("test", "check"):
        out = crmrules(command, str(folder))
        assert out.exit_code == 1, out.output
        assert "Traceback" not in out.output and "ValueError" not in out.output
        assert f"{where(folder, 'evnt')}: " in out.output
        assert "did you mean 'event'" in out.output


@pytest.mark.parametrize("at", ["tomorrow", "2026-01-05T09:00:00", "+3x"])
def test_a_bad_at_is_a_located_error_not_a_traceback(tmp_path, at):
    """Finding: a bad `at:` ends in a Python traceback."""

    folder = write_pack(tmp_path, _case("expect: [{rule: welcome}]", events=f'[{{at: "{at}", event: signup}}]'))
    for command in ("test", "check"):
        out = crmrules(command, str(folder))
        assert out.exit_code == 1, out.output
        assert "Traceback" not in out.output
        quoted = f'"{at}"'  # the value starts at its quote
        assert f"{where(folder, quoted)}: " in out.output


def test_check_reads_the_tests_beside_a_pack(tmp_path):
    """Finding: `crmrules check` does not read `tests/*.yaml` at all. Acceptance: a pack whose test file has a
    misspelt key fails `crmrules check` with file:line:column."""

    folder = write_pack(tmp_path, _case("expect: [{rule: welcome, outcom: fired}]"))
    out = crmrules("check", str(folder))
    assert out.exit_code == 1, out.output
    assert f"{where(folder, 'outcom')}: " in out.output
    assert "did you mean 'outcome'" in out.output

    good = write_pack(tmp_path / "good", _case("expect: [{rule: welcome, outcome: fired}]"))
    out = crmrules("check", str(good))
    assert out.exit_code == 0, out.output
    assert "1 test file(s), 1 case(s)" in out.output


def test_an_unknown_case_key_is_located_at_the_key_with_a_did_you_mean(tmp_path):
    """Finding (strictness): a case's unknown key was reported at the case's line, column 1, without a hint."""

    folder = write_pack(tmp_path, _case("expect: [{rule: welcome}]", extra="expect_nto: [hot]"))
    out = crmrules("check", str(folder))
    assert out.exit_code == 1, out.output
    assert f"{where(folder, 'expect_nto')}: " in out.output
    assert "did you mean 'expect_not'" in out.output


def test_a_duration_is_expected_as_the_rule_wrote_it(tmp_path):
    """Finding: `due: 4h` in a rule has to be expected as `due_in: 14400.0`. Now `due: 4h` (and `after: 3d`)
    are read as durations; a different duration fails."""

    right = write_pack(tmp_path / "a", _case(
        "expect: [{rule: welcome, actions: [{task: {due: 4h}}]}, {rule: nurture, actions: [{message: {after: 3d}}]}]"))
    out = crmrules("test", str(right))
    assert out.exit_code == 0, out.output

    wrong = write_pack(tmp_path / "b", _case("expect: [{rule: welcome, actions: [{task: {due: 5h}}]}]"))
    out = crmrules("test", str(wrong))
    assert out.exit_code == 1, out.output
    assert "due_in" not in out.output.split("expected", 1)[1].split(";", 1)[0]  # said as written: due 5h

    bad = write_pack(tmp_path / "c", _case("expect: [{rule: welcome, actions: [{task: {due: soon}}]}]"))
    out = crmrules("check", str(bad))
    assert out.exit_code == 1, out.output
    assert f"{where(bad, 'soon')}: " in out.output


@pytest.mark.parametrize("action, text, message", [
    ("{task: {titel: 환영}}", "titel", "did you mean 'title'"),
    ("{task: {priority: hihg}}", "hihg", "'low', 'medium' or 'high'"),
    ("{mesage: {subject: 안녕하세요}}", "mesage", "did you mean 'message'"),
    ("{message: {subjct_contains: 안녕}}", "subjct_contains", "did you mean 'subject_contains'"),
    ("{tag: {name: new}}", "{name: new}", "a tag name"),
    ("{score: lots}", "lots", "number"),
])
def test_action_fields_in_expectations_are_checked_against_the_action_type(tmp_path, action, text, message):
    """Finding (what to build): action fields in expectations are checked against the action type, so a
    misspelt field cannot make `actions_not` pass vacuously or `actions` fail for the wrong reason."""

    folder = write_pack(tmp_path, _case(f"expect: [{{rule: welcome, actions_not: [{action}]}}]"))
    out = crmrules("check", str(folder))
    assert out.exit_code == 1, out.output
    assert f"{where(folder, text)}: " in out.output
    assert message in out.output


def test_a_bad_outcome_value_is_an_error(tmp_path):
    """Finding (strictness): `outcome: blokced` matched nothing and read as a failed expectation."""

    folder = write_pack(tmp_path, _case("expect: [{rule: welcome, outcome: blokced}]"))
    out = crmrules("check", str(folder))
    assert out.exit_code == 1, out.output
    assert f"{where(folder, 'blokced')}: " in out.output
    assert "did you mean 'blocked'" in out.output


def test_a_test_file_that_is_not_yaml_is_located(tmp_path):
    folder = write_pack(tmp_path, "tests:\n  - name: x\n    events: [{at: +0d, event: signup}\n")
    out = crmrules("check", str(folder))
    assert out.exit_code == 1, out.output
    assert f"{folder / 'tests' / 'cases.yaml'}:" in out.output
    assert "not valid YAML" in out.output


def test_a_case_that_expects_nothing_is_an_error(tmp_path):
    """Finding (vacuous passes): a case without `expect`, `expect_not` or `expect_no_actions` (or with
    `expect: []`) passed whatever the rules did."""

    for n, body in enumerate(("", "expect: []")):
        folder = write_pack(tmp_path / str(n), _case(body))
        out = crmrules("check", str(folder))
        assert out.exit_code == 1, out.output
        assert "cases.yaml:3:5: " in out.output and "cannot fail" in out.output
    said = write_pack(tmp_path / "said", _case("expect: nothing", events="[{at: +0d, event: signup}]"))
    out = crmrules("test", str(said))
    assert out.exit_code == 1 and "expected nothing to fire; got welcome, nurture" in out.output, out.output


def test_a_misspelt_source_is_an_error(tmp_path):
    """A misspelt `source:` would have made an untrusted visitor's event a trusted one."""

    folder = write_pack(tmp_path, _case("expect: [{rule: welcome}]", events="[{at: +0d, event: signup, source: wbe}]"))
    out = crmrules("check", str(folder))
    assert out.exit_code == 1, out.output
    assert f"{where(folder, 'wbe')}: " in out.output and "did you mean 'web'" in out.output


VARS_PACK = """
pack: shop
vars:
  views: 2
rules:
  - id: hot
    when: {count: {event: page_view, within: 7d, at_least: "${views}"}}
    then: [{tag: hot}]
"""


def test_a_case_s_vars_are_checked_where_the_case_wrote_them(tmp_path):
    """A misspelt variable in a case's `vars:` is located in the test file; a value the pack refuses too."""

    events = "[{at: +0d, event: page_view}]"
    misspelt = write_pack(tmp_path / "a", _case("expect: [{rule: hot}]", events, "vars: {veiws: 1}"), VARS_PACK)
    out = crmrules("check", str(misspelt))
    assert out.exit_code == 1, out.output
    assert f"{where(misspelt, 'veiws')}: " in out.output and "did you mean 'views'" in out.output

    refused = write_pack(tmp_path / "b", _case("expect: [{rule: hot}]", events, "vars: {views: lots}"), VARS_PACK)
    out = crmrules("check", str(refused))
    assert out.exit_code == 1, out.output
    assert f"{where(refused, '{views: lots}')}: tests[0].vars: " in out.output and "pack.yaml" in out.output

    fine = write_pack(tmp_path / "c", _case("expect: [{rule: hot}]", events, "vars: {views: 1}"), VARS_PACK)
    assert crmrules("test", str(fine)).exit_code == 0


MALFORMED = [
    "tests: 5",
    "tests: [5]",
    "tests: [{name: x, events: 5, expect: [{rule: hot}]}]",
    "tests: [{name: x, events: [5], expect: [{rule: hot}]}]",
    "tests: [{name: x, events: [{at: +0d, event: [a]}], expect: [{rule: hot}]}]",
    "tests: [{name: x, events: [{at: [1], event: x}], expect: [{rule: hot}]}]",
    "tests: [{name: x, events: [{at: +99999999999d, event: x}], expect: [{rule: hot}]}]",
    "tests: [{name: x, events: [{at: +1d25:00, event: x}], expect: [{rule: hot}]}]",
    "tests: [{name: x, events: [{at: +0d, event: x, properties: 5}], expect: [{rule: hot}]}]",
    "tests: [{name: x, events: [{at: +0d, event: x, source: 5}], expect: [{rule: hot}]}]",
    "tests: [{name: x, events: [{at: +0d, event: x, update: {a: 1}}], expect: [{rule: hot}]}]",
    "tests: [{name: x, events: [{at: +0d, update: 5}], expect: [{rule: hot}]}]",
    "tests: [{name: x, events: [{at: +0d, merge: a, into: b}], expect: [{rule: hot}]}]",
    "tests: [{name: x, expect: [5]}]",
    "tests: [{name: x, expect: 5}]",
    "tests: [{name: x, expect: [{rule: [hot]}]}]",
    "tests: [{name: x, expect: [{outcome: fired}]}]",
    "tests: [{name: x, expect: [{rule: hot, times: -1}]}]",
    "tests: [{name: x, expect: [{rule: hot, times: true}]}]",
    "tests: [{name: x, expect: [{rule: hot, times: 0, actions: [tag]}]}]",
    "tests: [{name: x, expect: [{rule: hot, actions: 5}]}]",
    "tests: [{name: x, expect: [{rule: hot, actions: [5]}]}]",
    "tests: [{name: x, expect: [{rule: hot, actions: [{tag: hot, score: 1}]}]}]",
    "tests: [{name: x, expect: [{rule: hot, actions: [{message: {at: soon}}]}]}]",
    "tests: [{name: x, expect: [{rule: hot, actions: [{message: {cancelled: maybe}}]}]}]",
    "tests: [{name: x, expect: [{rule: hot, actions: [{set: 5}]}]}]",
    "tests: [{name: x, expect: [{rule: hot, actions: [{message: 5}]}]}]",
    "tests: [{name: x, expect: [{rule: hot, actions: [{tag: {after: 1d}}]}]}]",
    "tests: [{name: x, expect: [{rule: hot, actions: [{tag: hot}], about: nobody}]}]",
    "tests: [{name: x, expect_no_actions: [], expect: [{rule: hot}]}]",
    "tests: [{name: x, expect_no_actions: 5}]",
    "tests: [{name: x, records: 5, expect: [{rule: hot}]}]",
    "tests: [{name: x, records: {a: 5}, expect: [{rule: hot}]}]",
    "tests: [{name: x, records: {a: {lead: 5}}, expect: [{rule: hot}]}]",
    "tests: [{name: x, records: {a: {lead: {email: a@x.kr}, account: {name: b}}}, expect: [{rule: hot}]}]",
    "tests: [{name: x, records: {a: {lead: {email: a@x.kr}, with: 5}}, expect: [{rule: hot}]}]",
    "tests: [{name: x, records: {a: {lead: {email: a@x.kr}, with: [zz]}}, expect: [{rule: hot}]}]",
    "tests: [{name: x, records: {a: {lead: {email: a@x.kr}, source: web}}, expect: [{rule: hot}]}]",
    "tests: [{name: x, records: {a: {lead: {email: a@x.kr}}}, lead: {email: b@x.kr}, expect: [{rule: hot}]}]",
    "tests: [{name: x, records: {a: {lead: {email: a@x.kr}}, b: {lead: {email: b@x.kr}}},"
    " events: [{at: +0d, event: x}], expect: [{rule: hot}]}]",
    "tests: [{name: x, records: {a: {lead: {email: a@x.kr}}, b: {account: {name: b}}},"
    " events: [{at: +0d, merge: a, into: b}], expect: [{rule: hot}]}]",
    "tests: [{name: x, start: soon, expect: [{rule: hot}]}]",
    "tests: [{name: x, until: soon, expect: [{rule: hot}]}]",
    "tests: [{name: x, vars: 5, expect: [{rule: hot}]}]",
    "tests: [{name: x, lead: 5, expect: [{rule: hot}]}]",
    "tests: [{name: x, name: y, expect: [{rule: hot}]}]",
    "tests: [{name: x, expect: [{rule: hot}]}]\nother: 1",
]


@pytest.mark.parametrize("text", MALFORMED)
def test_a_malformed_test_file_is_a_located_error_never_a_traceback(tmp_path, text):
    """Finding: bad input in a test file ended in a Python traceback; every shape of mistake is now a located
    error from both commands."""

    folder = write_pack(tmp_path, text + "\n")
    file = folder / "tests" / "cases.yaml"
    for command in ("check", "test"):
        out = crmrules(command, str(folder))
        assert out.exit_code == 1, (command, out.output)
        assert "Traceback" not in out.output and "Error:" not in out.output, (command, out.output)
        assert f"{file}:" in out.output, (command, out.output)


def test_a_test_file_that_is_not_utf8_is_an_error(tmp_path):
    folder = write_pack(tmp_path, "tests: []\n")
    (folder / "tests" / "cases.yaml").write_bytes("tests: [{name: 김}]\n".encode("euc-kr"))
    out = crmrules("check", str(folder))
    assert out.exit_code == 1 and "not UTF-8" in out.output, out.output
