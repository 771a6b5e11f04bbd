"""A bad pack reports every mistake at once, each at its file:line:column, in words an admin can act on."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crmrules.language import PackError, load_pack

from .helpers import pack_file

THREE_MISTAKES = """\
pack: broken
rules:
  - id: hot-lead
    when:
      count: {event: page_view, within: 7 days, at_least: 2}
    then:
      - tagg: hot
  - id: reminder
    when: {event: contract_opened}
    then: [{tag: x}]
    limit: twice a day
"""


def test_three_mistakes_three_located_errors(tmp_path):
    path = pack_file(tmp_path, THREE_MISTAKES)
    with pytest.raises(PackError) as caught:
        load_pack(path)
    errors = [str(e) for e in caught.value.errors]
    assert errors == [
        f"{path}:5:41: rules[0].when.count.within: '7 days' is not a duration; write 7d",
        f"{path}:7:9: rules[0].then[0].tagg: unknown action 'tagg'; did you mean 'tag'?",
        f"{path}:11:12: rules[1].limit: 'twice a day' is not a limit; write `every time`, `once per lead`, "
        "`once per lead per 30d` or `at most 3 per 7d`",
    ]


def test_cli_check_exits_non_zero_with_all_errors(tmp_path):
    path = pack_file(tmp_path, THREE_MISTAKES)
    out = subprocess.run([sys.executable, "-m", "crmrules.cli", "check", str(path)], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.count(str(path)) == 3
    assert "3 error(s)" in out.stderr


@pytest.mark.parametrize("text, expected", [
    ("rules:\n  - id: a\n    when: {event: x}\n    then: [{tag: y}]\n    colour: red\n", "5:5: rules[0].colour: unknown field 'colour'"),
    ("rules:\n  - id: a\n    when: {evnt: x}\n    then: [{tag: y}]\n", "3:12: rules[0].when.evnt: unknown condition 'evnt'; did you mean 'event'?"),
    ("rules:\n  - id: a\n    when: {lead: {score: {at_lest: 3}}}\n    then: [{tag: y}]\n", "unknown test 'at_lest'; did you mean 'at_least'?"),
    ("vars: {w: 7d}\nrules:\n  - id: a\n    when: {count: {event: x, within: '${wk}', at_least: 1}}\n    then: [{tag: y}]\n", "unknown variable ${wk}; did you mean ${w}?"),
    ("rules:\n  - id: a\n    when: {segment: hot}\n    then: [{tag: y}]\n", "unknown segment 'hot'"),
    ("rules:\n  - id: a\n    when: {event: x}\n    then: [{score: +30, after: 1d}]\n", "cannot be delayed"),
    ("rules:\n  - id: a\n    when: {event: x}\n    then: [{message: {template: nope}}]\n", "no template 'nope'"),
    ("rules:\n  - id: a\n    when: {event: x}\n    then: [{task: {title: '{{ lead.name '}}]\n", "template error"),
    ("rules:\n  - id: a\n    when: {event: x}\n    then: [{tag: y}]\n  - id: a\n    when: {event: x}\n    then: [{tag: y}]\n", "already used at line 2"),
    ("rules:\n  - id: a\n    when: {no: {event: x}}\n    then: [{tag: y}]\n", "say since when"),
    ("rules:\n  - id: a\n    when: {lead: {name: {matches: '(['}}}\n    then: [{tag: y}]\n", "not a valid regular expression"),
    ("rules:\n  - id: a\n    a: 1\n    a: 2\n", "4:5: key 'a' appears twice"),
    ("rules: [\n", "not valid YAML"),
])
def test_each_mistake_is_named(tmp_path, text, expected):
    with pytest.raises(PackError) as caught:
        load_pack(pack_file(tmp_path, text))
    assert expected in str(caught.value), str(caught.value)


def test_yaml_no_and_norway_are_not_booleans(tmp_path):
    """YAML 1.1 reads `no` and `NO` as false; our `no:` condition and country codes must survive."""
    pack = load_pack(pack_file(tmp_path, """
        rules:
          - id: a
            when:
              all:
                - no: {event: login, for: 30d}
                - lead: {country: NO}
            then: [{tag: y}]
    """))
    assert pack.rules[0].when.items[1].checks[0].tests[0].value == "NO"
