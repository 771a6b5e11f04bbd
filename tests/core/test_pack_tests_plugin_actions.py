"""A plugin's action in a pack test is checked like a built-in one: its fields come from the model the plugin
registered (`ActionType.expect`, built by `model_action`), so a misspelt field is a located error and a
right one is matched against what the rule did."""

from __future__ import annotations

import textwrap

from pydantic import BaseModel

from crmrules.actions import builtin_table, model_action
from crmrules.language import load_pack
from crmrules.testing import check_pack_tests, run_pack_tests


class ChatNotify(BaseModel):
    channel: str
    text: str
    urgent: bool = False


PACK = """
pack: chat
rules:
  - id: tell-sales
    when: {event: signup}
    then:
      - chat_notify: {channel: "#sales", text: "{{ lead.email }} 가입", urgent: true}
        after: 1h
"""


def _pack(tmp_path, cases: str):
    table = {**builtin_table(), "chat_notify": model_action("chat_notify", ChatNotify)}
    (tmp_path / "tests").mkdir()
    (tmp_path / "pack.yaml").write_text(textwrap.dedent(PACK), encoding="utf-8")
    (tmp_path / "tests" / "t.yaml").write_text(textwrap.dedent(cases), encoding="utf-8")
    return load_pack(tmp_path / "pack.yaml", action_types=table), table


def test_a_plugin_action_is_matched_on_its_model_fields(tmp_path):
    pack, table = _pack(tmp_path, """
        tests:
          - name: sales hear of a signup an hour later
            lead: {email: kim@example.com}
            events: [{at: +0d, event: signup}]
            expect:
              - rule: tell-sales
                actions: [{chat_notify: {channel: "#sales", text_contains: kim@, urgent: true, after: 1h}}]
                actions_not: [{chat_notify: {channel: "#support"}}]
          - name: the wrong channel fails
            lead: {email: kim@example.com}
            events: [{at: +0d, event: signup}]
            expect: [{rule: tell-sales, actions: [{chat_notify: {channel: "#support"}}]}]
        """)
    results = run_pack_tests(pack, table)
    assert [r.status for r in results] == ["passed", "failed"], [r.problems for r in results]
    assert "tell-sales: expected chat_notify: {channel: #support}" in results[1].problems[0]


def test_a_plugin_action_field_is_checked_against_its_model(tmp_path):
    pack, table = _pack(tmp_path, """
        tests:
          - name: misspelt
            lead: {email: kim@example.com}
            events: [{at: +0d, event: signup}]
            expect: [{rule: tell-sales, actions_not: [{chat_notify: {chanel: "#sales", urgent: maybe}}]}]
        """)
    errors = [str(e) for e in check_pack_tests(pack, table).errors]
    line = (tmp_path / "tests" / "t.yaml").read_text(encoding="utf-8").splitlines()[5]
    at = {word: f":6:{line.index(word) + 1}: " for word in ("chanel", "maybe")}
    assert any(at["chanel"] in e and "did you mean 'channel'" in e for e in errors), errors
    assert any(at["maybe"] in e and "urgent: Input should be a valid boolean" in e for e in errors), errors
