"""Property-based checks: the durable-rules matcher and the Python twin agree on generated conditions and
snapshots, and the pack loader never crashes on arbitrary input (it raises PackError or loads)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmrules.decide.compiler import CompiledRule, Program, compile_packs, negate, to_durable
from crmrules.decide.matchers import DurableMatcher, PythonMatcher
from crmrules.language import PackError
from crmrules.language.parser import parse_pack_text

SLOTS = ["s0", "s1", "s2"]
values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3).map(float), st.sampled_from(["a", "b", "김"]))


def leaf():
    return st.builds(lambda op, slot, v: ("cmp", op, slot, v),
                     st.sampled_from(["eq", "neq", "ge", "lt"]), st.sampled_from(SLOTS),
                     st.one_of(st.integers(-2, 2).map(float), st.sampled_from(["a", "김"]), st.booleans(), st.none()))


def _valid(expr):
    tag = expr[0]
    if tag in ("and", "or"):
        return all(_valid(e) for e in expr[1])
    _, op, _slot, value = expr
    if op in ("ge", "lt"):
        return isinstance(value, float)
    if op == "neq" and isinstance(value, bool):
        return False
    return True


exprs = st.recursive(leaf(), lambda inner: st.one_of(
    st.builds(lambda xs: ("and", xs), st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda xs: ("or", xs), st.lists(inner, min_size=1, max_size=3)),
    st.builds(negate, inner),
), max_leaves=6).filter(_valid)


def _program(conditions: list) -> Program:
    program = compile_packs([])
    program.rules = []
    ruleset = {}
    for i, expr in enumerate(conditions):
        cr = CompiledRule(rule=None, index=i, key=f"k{i}", expr=expr, json=to_durable(expr), slots=SLOTS,
                          leaves=[], trigger_types=set(), trigger_props=set(), timed=False)
        program.rules.append(cr)
        ruleset[f"r{i}"] = {"all": [{"m": cr.json}]}
        program.ruleset_of[cr.key] = 0
    program.rulesets = [ruleset]
    program.version = f"prop{id(conditions)}"
    return program


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.lists(exprs, min_size=1, max_size=4), st.lists(st.fixed_dictionaries({s: values for s in SLOTS}), min_size=1, max_size=5))
def test_durable_and_python_matchers_agree(conditions, snapshots):
    program = _program(conditions)
    durable, python = DurableMatcher(program), PythonMatcher(program)
    for snapshot in snapshots:
        assert durable.match(snapshot, program.rules) == python.match(snapshot, program.rules), snapshot


yaml_text = st.one_of(
    st.text(max_size=200),
    st.builds(lambda k, v: f"rules:\n  - id: a\n    when: {{{k}: {v}}}\n    then: [{{tag: x}}]\n",
              st.sampled_from(["event", "count", "no", "lead", "sequence", "all", "any", "not", "sum", "happened", "segment"]),
              st.one_of(st.text(max_size=30), st.sampled_from(["{event: x, within: 7d, at_least: 2}", "[a, b]", "{x: {in: [1]}}", "null", "{}", "[]"]))),
)


@settings(max_examples=300, deadline=None)
@given(yaml_text)
def test_loader_never_crashes(text):
    try:
        parse_pack_text(text, "fuzz.yaml")
    except PackError as exc:
        assert all(e.file == "fuzz.yaml" and e.line >= 1 and e.message for e in exc.errors)
