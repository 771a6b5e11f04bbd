"""The command line as an admin uses it: help everywhere, explain answering "why not", demo and outbox."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import click
import pytest

from crmrules.cli import cli

def _commands(group: click.Group, prefix: list[str]) -> list[list[str]]:
    """Every command and subcommand of the CLI, read from the click group, so a new one cannot miss its help."""

    found = [prefix]
    for name, command in sorted(group.commands.items()):
        found += _commands(command, [*prefix, name]) if isinstance(command, click.Group) else [[*prefix, name]]
    return found


COMMANDS = _commands(cli, [])


def crmrules(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "crmrules.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "crmrules")
def test_every_command_has_help(command):
    out = crmrules(*command, "--help")
    assert out.returncode == 0, out.stderr
    assert "Usage: crmrules" in out.stdout
    assert len(out.stdout.splitlines()) > 3


PACK = """
pack: sales
rules:
  - id: hot-lead
    when:
      all:
        - count: {event: page_view, where: {path: /pricing}, within: 7d, at_least: 2}
        - lead: {email_opt_in: true}
    then: [{tag: 관심 높음}, {task: {title: "{{ lead.name }} 연락"}}]
  - id: welcome
    when: {event: signup}
    then: [{tag: new}]
"""


def test_explain_says_why_a_rule_did_not_fire(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "sales.yaml").write_text(textwrap.dedent(PACK), encoding="utf-8")
    events = [
        {"id": "1", "type": "record_update", "at": "2026-03-02T09:00:00+09:00", "lead": {"email": "kim@example.com"},
         "props": {"first_name": "유진", "last_name": "김", "email_opt_in": True}},
        {"id": "2", "type": "page_view", "at": "2026-03-02T10:00:00+09:00", "lead": {"email": "kim@example.com"}, "props": {"path": "/pricing"}},
        {"id": "3", "type": "signup", "at": "2026-03-02T11:00:00+09:00", "lead": {"email": "kim@example.com"}},
        {"id": "4", "type": "signup", "at": "2026-03-03T11:00:00+09:00", "lead": {"email": "kim@example.com"}},
    ]
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in events), encoding="utf-8")
    store = str(tmp_path / "s.sqlite")
    run = crmrules("run", "--rules", str(tmp_path / "rules"), "--events", str(tmp_path / "events.jsonl"), "--store", store)
    assert run.returncode == 0, run.stderr
    out = crmrules("explain", "kim@example.com", "--store", store, "--rules", str(tmp_path / "rules"))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "김유진" in text
    assert "sales/welcome: FIRED" in text and "sales/welcome: BLOCKED — limit 'once per lead' reached" in text
    assert "sales/hot-lead" in text
    assert "✗ count of page_view where path = '/pricing' within 7d ≥ 2: 1 of at least 2" in text
    assert "✓ lead.email_opt_in = True: lead.email_opt_in is True" in text
    one = crmrules("explain", "김유진", "hot-lead", "--store", store, "--rules", str(tmp_path / "rules"))
    assert "welcome" not in one.stdout and "hot-lead" in one.stdout
    missing = crmrules("explain", "nobody@example.com", "--store", store, "--rules", str(tmp_path / "rules"))
    assert missing.returncode == 1 and "no lead matches 'nobody@example.com'" in missing.stderr
