"""Issue 16, "Check": what `crmrules check` and the loader must find before a pack runs, and what rendering must
refuse at run time. Each test names its finding; each failed on the code before the fix."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from crmrules.language import PackError, load_pack
from crmrules.language.limits import MAX_NODES

from .helpers import ev, pack_file, pipeline

CLI = [sys.executable, "-m", "crmrules.cli"]


def errors_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(PackError) as caught:
        load_pack(pack_file(tmp_path, text))
    return [str(e) for e in caught.value.errors]


def decisions(p, rule: str) -> list:
    return [d for d in p.store.all_decisions() if d.rule == rule]


# ------------------------------------------------------------------ templates at check time

def test_unknown_filter_is_a_located_error(tmp_path):
    """Finding: an unknown Jinja filter passed `check` and dropped the action at run time."""
    path = pack_file(tmp_path, """\
        rules:
          - id: a
            when: {event: signup}
            then: [{task: "Call {{ lead.name | upperr }}"}]
    """)
    with pytest.raises(PackError) as caught:
        load_pack(path)
    assert [str(e) for e in caught.value.errors] == [
        f"{path}:4:19: rules[0].then[0].task.title: template error: unknown filter 'upperr'; did you mean 'upper'?"]


def test_misspelt_field_name_is_an_error_with_did_you_mean(tmp_path):
    """Finding: `{{ lead.nmae }}` passed `check` and rendered empty for every lead."""
    errors = errors_of(tmp_path, """\
        rules:
          - id: a
            when: {event: signup}
            then:
              - tag: "{{ lead.compnay }}"
              - task: "{{ lead.nmae }}님께 연락"
    """)
    assert len(errors) == 2, errors
    assert "rules[0].then[0].tag: template error: lead.compnay: no such field; did you mean lead.company?" in errors[0]
    assert "lead.nmae: no such field; did you mean lead.name?" in errors[1]


def test_a_field_the_pack_names_is_known_and_a_custom_one_is_allowed(tmp_path):
    """Finding (typo check without false alarms): fields the pack's conditions name, and custom fields far from
    any known name, are not errors; a typo of a pack's own field is."""
    load_pack(pack_file(tmp_path, """\
        rules:
          - id: a
            when: {lead: {membership_tier: gold}}
            then: [{task: "{{ lead.membership_tier }} {{ lead.favourite_store }} {{ event.type }}"}]
    """))
    errors = errors_of(tmp_path, """\
        rules:
          - id: a
            when: {lead: {membership_tier: gold}}
            then: [{task: "{{ lead.membership_teir }}"}]
    """)
    assert "did you mean lead.membership_tier?" in errors[0]


def test_unknown_names_and_variables_are_errors(tmp_path):
    """Finding: a misspelt top-level name (`leed`) or variable rendered empty instead of failing `check`."""
    errors = errors_of(tmp_path, """\
        vars: {company_name: 넥스트세일즈}
        rules:
          - id: a
            when: {event: signup}
            then: [{message: {subject: "{{ leed.name }}", body: "{{ vars.company_nmae }}"}}]
    """)
    assert any("unknown name 'leed'; did you mean 'lead'?" in e for e in errors), errors
    assert any("unknown variable vars.company_nmae; did you mean 'company_name'?" in e for e in errors), errors


def test_template_error_on_line_4_is_reported_at_line_4(tmp_path):
    """Finding: a template error on line 4 of a multi-line template was reported at 1:1 (or the value's start)."""
    path = pack_file(tmp_path, """\
        rules:
          - id: a
            when: {event: signup}
            then:
              - message:
                  subject: 안녕하세요
                  body: |
                    {{ lead.name }}님,
                    반갑습니다.

                    {{ lead.name | titel }}
    """)
    with pytest.raises(PackError) as caught:
        load_pack(path)
    (error,) = caught.value.errors
    assert (error.line, error.column) == (11, 13), str(error)
    assert "unknown filter 'titel'; did you mean 'title'?" in error.message


def test_template_file_error_is_at_its_line_in_the_file(tmp_path):
    """Finding: an error in templates/<name>.<locale>.txt was reported at line 1 whatever its line."""
    path = pack_file(tmp_path, """\
        rules:
          - id: a
            when: {event: signup}
            then: [{message: {template: welcome}}]
    """)
    (path.parent / "templates").mkdir()
    (path.parent / "templates" / "welcome.ko.txt").write_text(
        "Subject: 환영합니다\n\n{{ lead.name }}님,\n반갑습니다.\n{{ lead.name | nope }}\n", encoding="utf-8")
    with pytest.raises(PackError) as caught:
        load_pack(path)
    (error,) = caught.value.errors
    assert error.file.endswith("welcome.ko.txt") and error.line == 5, str(error)
    assert "unknown filter 'nope'" in error.message


def test_check_fails_on_an_unknown_filter(tmp_path):
    """Acceptance: a template with an unknown filter fails `crmrules check`, located."""
    path = pack_file(tmp_path, """\
        rules:
          - id: a
            when: {event: signup}
            then: [{tag: "{{ lead.company | lowerr }}"}]
    """)
    out = subprocess.run([*CLI, "check", str(path)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 1
    assert f"{path}:4:18: rules[0].then[0].tag: template error: unknown filter 'lowerr'" in out.stderr


# ------------------------------------------------------------------ required fields that render empty

EMPTY_PACK = """\
    rules:
      - id: by-company
        when: {event: signup}
        then: [{tag: "{{ lead.company }}"}]
      - id: call-now
        when: {event: signup}
        then:
          - task: "{{ lead.name }}님께 바로 연락"
          - score: +5
      - id: greet
        when: {event: signup}
        then: [{task: "{{ lead.name | default('고객', true) }}님께 바로 연락"}]
"""


def test_required_field_that_renders_empty_blocks_the_action_with_its_reason(tmp_path):
    """Finding: an empty `{{ lead.company }}` queued the tag '' and a lead with no name got the task
    "님께 바로 연락"; now the action is not taken and the decision says why."""
    p = pipeline(tmp_path, EMPTY_PACK)
    p.replay([ev("signup")])  # kim@example.com: no name, no company
    (tag,) = decisions(p, "by-company")
    assert tag.outcome == "blocked" and not tag.actions
    assert "the tag's name has an empty value for this record" in tag.reason
    (call,) = decisions(p, "call-now")  # its score is still given; the task is not, and the reason says so
    assert [a.type for a in call.actions] == ["score"]
    assert "the task's title has an empty value" in call.reason and "님께 바로 연락" in call.reason
    (greet,) = decisions(p, "greet")
    assert greet.outcome == "fired" and greet.actions[0].title == "고객님께 바로 연락"


def test_empty_required_field_is_visible_in_a_pack_test(tmp_path):
    """Finding: the blocked action must show in pack tests (`outcome: blocked`, `reason_contains`)."""
    path = pack_file(tmp_path, EMPTY_PACK)
    (path.parent / "tests").mkdir()
    (path.parent / "tests" / "empty.yaml").write_text(textwrap.dedent("""\
        tests:
          - name: a lead with no company gets no empty tag
            lead: {email: kim@example.com}
            events: [{at: +0d, event: signup}]
            expect:
              - {rule: by-company, outcome: blocked, reason_contains: "tag's name has an empty value"}
              - {rule: greet, actions: [{task: 고객님께 바로 연락}]}
    """), encoding="utf-8")
    out = subprocess.run([*CLI, "test", str(path.parent)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout


# ------------------------------------------------------------------ bounded rendering

def test_huge_template_value_fails_that_action_and_the_worker_goes_on(tmp_path):
    """Finding: `{{ 'A'*1500000000 }}` allocated without bound in the worker. Now that action fails with a
    reason, fast, and the next events are evaluated."""
    p = pipeline(tmp_path, """\
        rules:
          - id: bomb
            when: {event: signup}
            then: [{task: "{{ 'A' * 1500000000 }}"}, {tag: signed-up}]
            limit: every time
          - id: loop
            when: {event: signup}
            then: [{task: "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x"}]
            limit: every time
          - id: after
            when: {event: visit}
            then: [{tag: visited}]
    """)
    started = time.monotonic()
    p.replay([ev("signup", 0), ev("visit", 1)])
    assert time.monotonic() - started < 60  # the loop alone would take hours; the bound is a second
    (bomb,) = decisions(p, "bomb")
    assert [a.type for a in bomb.actions] == ["tag"]
    assert "would be 1,500,000,000 long" in bomb.reason
    (loop,) = decisions(p, "loop")
    assert loop.outcome == "blocked" and "took longer than" in loop.reason
    assert decisions(p, "after")[0].outcome == "fired"


@pytest.mark.parametrize("template, says", [
    ("{{ 'a' | center(1500000000) }}", "center(1500000000)"),
    ("{{ '%1500000000s' % 'a' }}", "format width"),
    ("{{ '{:>1500000000}'.format(1) }}", "format width"),
    ("{{ 'ab' | replace('', 'A' * 900000) }}", "replace()"),
    ("{{ ['A' * 100000] * 100 }}", "would be 10,000,100 long"),
    ("{{ ('A' * 1000000) ~ ('A' * 1000000) }}", "'~'"),
    ("{{ 2 ** 100000000 }}", "exponents"),
    ("{% for i in range(100000) %}{{ 'A' * 1000 }}{% endfor %}", "longer than 200,000 characters"),
])
def test_every_way_to_build_a_huge_value_is_bounded(template, says):
    """Finding (bounded rendering): output size, each value's size and the time of one render are bounded."""
    from crmrules.templates import RenderLimit, render

    with pytest.raises(RenderLimit, match=None) as caught:
        render(template, {"lead": {}})
    assert says in str(caught.value)


def test_macros_and_block_sets_are_refused_at_check(tmp_path):
    """Finding (bounded rendering): `{% macro %}` and `{% set %}…{% endset %}` build text out of the output's
    sight; message templates do not need them, so `check` refuses them."""
    errors = errors_of(tmp_path, """\
        rules:
          - id: a
            when: {event: signup}
            then: [{task: "{% macro f() %}x{% endmacro %}{{ f() }}"}]
    """)
    assert "{% macro %} is not available in message templates" in errors[0]


# ------------------------------------------------------------------ bounded loading

BOMB = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, c in zip("abcdefgh", "bcdefghi"))


def test_alias_bomb_is_a_located_error_not_memory_error(tmp_path):
    """Finding: a YAML alias bomb (9 levels of 9 aliases) ended in MemoryError."""
    errors = errors_of(tmp_path, BOMB + "rules: []\n")
    assert len(errors) == 1 and ":6:" in errors[0] and "expands the document past" in errors[0], errors


def test_alias_built_condition_tree_is_refused(tmp_path):
    """Finding: a condition tree built from aliases (each level twice the one below) ended in MemoryError."""
    levels = ["s0: &s0 {lead: {x: 1}}"] + [f"s{i}: &s{i} {{any: [*s{i - 1}, *s{i - 1}]}}" for i in range(1, 40)]
    text = "segments:\n" + "".join(f"  {line}\n" for line in levels) + \
        "rules:\n  - id: a\n    when: {segment: s39}\n    then: [{tag: y}]\n"
    errors = errors_of(tmp_path, text)
    assert errors and all("MemoryError" not in e for e in errors)
    assert any("nests values deeper than 64 levels" in e or "expands the document" in e for e in errors), errors


def test_self_referring_alias_is_refused(tmp_path):
    """Finding (bounded loading): an alias inside what it names made an endless structure (RecursionError)."""
    errors = errors_of(tmp_path, "segments:\n  s: &s {all: [*s]}\nrules: []\n")
    assert "alias *s is used inside the value it names" in errors[0]


def test_deep_nesting_is_a_located_error_not_recursion_error(tmp_path):
    """Finding: deep nesting ended in RecursionError."""
    errors = errors_of(tmp_path, "rules: " + "[" * 5000 + "]" * 5000 + "\n")
    assert len(errors) == 1 and ":1:" in errors[0] and "nested deeper than 64 levels" in errors[0], errors


def test_huge_pack_is_refused_before_it_is_read(tmp_path):
    """Finding: a 50 MB pack ended in MemoryError (6 MB here: anything over the 5 MB limit is refused)."""
    path = pack_file(tmp_path, "rules: []\n")
    path.write_text("rules: []\n" + "# padding\n" * 600_000, encoding="utf-8")
    with pytest.raises(PackError) as caught:
        load_pack(path)
    assert "packs are read up to 5 MB" in str(caught.value)


def test_bounded_loading_of_pack_tests_and_settings(tmp_path):
    """Finding: pack tests and crmrules.yaml are YAML too: an alias bomb in them is a located error."""
    path = pack_file(tmp_path, "rules:\n  - id: a\n    when: {event: x}\n    then: [{tag: y}]\n")
    (path.parent / "tests").mkdir()
    (path.parent / "tests" / "t.yaml").write_text(BOMB, encoding="utf-8")
    out = subprocess.run([*CLI, "check", str(path.parent)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 1 and "t.yaml:6:" in out.stderr and "expands the document" in out.stderr, out.stderr
    (tmp_path / "crmrules.yaml").write_text(BOMB, encoding="utf-8")
    out = subprocess.run([*CLI, "check", str(path.parent)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 1 and "crmrules.yaml:6:" in out.stderr and "expands the document" in out.stderr


# ------------------------------------------------------------------ engine limits

def _nested(depth: int, leaf: str) -> str:
    cond = leaf
    for i in range(depth):
        cond = f"{{{'all' if i % 2 else 'any'}: [{cond}, {{lead: {{y{i}: {{missing: true}}}}}}]}}"
    return cond


def test_nesting_past_the_engine_limit_is_a_check_error(tmp_path):
    """Finding: `all` nested 16 deep passed check and then crashed run/serve (durable-rules error code 113)."""
    errors = errors_of(tmp_path, f"rules:\n  - id: a\n    when: {_nested(16, '{lead: {x: 1}}')}\n    then: [{{tag: y}}]\n")
    assert len(errors) == 1 and ":3:11: rules[0].when: the condition makes 16 and/or nodes" in errors[0], errors
    assert f"at most {MAX_NODES}" in errors[0]


LEAF = "{not: {lead: {a: {in: [1, 2]}, b: {in: [3, 4], not: 5}}}}"  # compiles to several nodes


@pytest.mark.parametrize("leaf", ["{lead: {x: 1}}", LEAF])
def test_check_refuses_exactly_what_the_engine_refuses(tmp_path, leaf, monkeypatch):
    """Finding (engine limits): at the limit check lets through, the rule runs in durable-rules; one node more
    is a check error, and durable-rules really refuses it (so the limit is the engine's, not a guess)."""
    import json

    import durable_rules_engine

    from crmrules.decide.compiler import compile_packs, engine_condition
    from crmrules.language import limits

    def text(depth: int) -> str:
        return f"rules:\n  - id: a\n    when: {_nested(depth, leaf)}\n    then: [{{tag: y}}]\n"

    def unchecked(depth: int):
        with monkeypatch.context() as m:
            m.setattr(limits, "MAX_NODES", 10**6)
            return load_pack(pack_file(tmp_path, text(depth)))

    def nodes(depth: int) -> int:
        return limits._measure(engine_condition(unchecked(depth).rules[0].when)[0])[0]

    depth = max(n for n in range(MAX_NODES + 1) if nodes(n) <= MAX_NODES)
    assert nodes(depth) == MAX_NODES
    p = pipeline(tmp_path, text(depth))
    p.replay([ev("signup", x=1)])  # the engine took the ruleset and evaluated the event
    with pytest.raises(PackError, match="the condition makes 16 and/or nodes"):
        load_pack(pack_file(tmp_path, text(depth + 1)))
    over = compile_packs([unchecked(depth + 1)]).rulesets[0]
    with pytest.raises(Exception, match="error code: 113"):
        durable_rules_engine.create_ruleset(f"over_{len(leaf)}", json.dumps(over))


def test_too_many_alternatives_or_values_are_check_errors(tmp_path):
    """Finding (engine limits): the engine hangs creating a ruleset with more than ~511 tests under one node,
    and takes at most 254 properties per fact; `check` says so instead of `run` hanging."""
    values = ", ".join(str(i) for i in range(600))
    errors = errors_of(tmp_path, f"rules:\n  - id: a\n    when: {{lead: {{x: {{in: [{values}]}}}}}}\n    then: [{{tag: y}}]\n")
    assert "has 600 tests under one and/or" in errors[0] and "at most 500" in errors[0]
    props = ", ".join(f"p{i}: {i}" for i in range(300))
    errors = errors_of(tmp_path, f"rules:\n  - id: a\n    when: {{lead: {{{props}}}}}\n    then: [{{tag: y}}]\n")
    assert "tests 300 values" in errors[0] and "at most 240" in errors[0]


# ------------------------------------------------------------------ other check findings

def test_limit_per_account_on_a_lead_rule_is_an_error(tmp_path):
    """Finding: `limit: once per account` on a lead rule passed check and meant once per lead."""
    errors = errors_of(tmp_path, """\
        rules:
          - id: a
            when: {event: signup}
            then: [{tag: y}]
            limit: once per account per 30d
    """)
    assert errors == [f"{tmp_path / 'pack' / 'pack.yaml'}:5:12: rules[0].limit: this rule is about a lead, so its "
                      "limit counts per lead; write `once per lead per 30d`, or make the rule `about: account` to "
                      "count per account"]


def test_duplicate_rule_id_is_reported_with_the_other_errors(tmp_path):
    """Finding: a duplicate rule id was reported only after the rule's other errors were fixed."""
    errors = errors_of(tmp_path, """\
        rules:
          - id: a
            when: {event: signup}
            then: [{tag: y}]
          - id: a
            when: {evnt: signup}
            then: [{tag: y}]
    """)
    assert any("rule id 'a' is already used at line 2" in e for e in errors), errors
    assert any("unknown condition 'evnt'" in e for e in errors), errors


def test_check_on_a_folder_without_packs_is_an_error(tmp_path):
    """Finding: `crmrules check` on an empty folder said ok."""
    (tmp_path / "empty").mkdir()
    out = subprocess.run([*CLI, "check", "empty"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 1
    assert "empty: no rule packs here" in out.stderr


def _settings_check(tmp_path: Path, settings: str) -> subprocess.CompletedProcess:
    pack_file(tmp_path, "rules:\n  - id: a\n    when: {event: x}\n    then: [{tag: y}]\n")
    (tmp_path / "crmrules.yaml").write_text(textwrap.dedent(settings), encoding="utf-8")
    return subprocess.run([*CLI, "check"], capture_output=True, text=True, cwd=tmp_path, timeout=120)


def test_settings_errors_carry_file_and_line(tmp_path):
    """Finding: settings errors (`logging: Extra inputs are not permitted`) had no line."""
    out = _settings_check(tmp_path, """\
        rules: [pack]
        logging: {level: debug}
        retention:
          events: 7 days
    """)
    assert out.returncode == 1
    assert "crmrules.yaml:2:1: logging: Extra inputs are not permitted" in out.stderr
    assert "crmrules.yaml:4:11: retention.events: Value error, '7 days' is not a duration" in out.stderr


def test_unknown_target_name_is_an_error_with_did_you_mean(tmp_path):
    """Finding: an unknown target name in `targets:` passed check (its actions would wait as dead letters)."""
    out = _settings_check(tmp_path, """\
        rules: [pack]
        targets:
          task: hubspott
          mesage.onsite: web_tracker
    """)
    assert out.returncode == 1, out.stdout
    assert "crmrules.yaml:3:9: targets.task: no target 'hubspott' is loaded; did you mean 'hubspot'?" in out.stderr
    assert "targets.mesage.onsite: no action type 'mesage'; did you mean 'message'?" in out.stderr
    ok = _settings_check(tmp_path, "rules: [pack]\ntargets: {task: hubspot, message.onsite: web_tracker}\n")
    assert ok.returncode == 0, ok.stderr
