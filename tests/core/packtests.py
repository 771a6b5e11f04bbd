"""Builders for the tests of pack tests: a pack folder with a test file beside it, and the CLI run on it.

The CLI runs in-process (click's runner) against real files and the real pipeline on a real SQLite file in a
temporary folder, as `crmrules test` does for an admin."""

from __future__ import annotations

import textwrap
from pathlib import Path

from click.testing import CliRunner, Result

from crmrules.cli import cli

SHOP = """
pack: shop
messages:
  quiet_hours: {from: "21:00", to: "08:00", timezone: Asia/Seoul}
rules:
  - id: welcome
    when: {event: signup}
    then:
      - tag: new
      - task: {title: "{{ lead.name }} 환영 전화", due: 4h, priority: high}
  - id: nurture
    when: {event: signup}
    then:
      - message: {channel: email, subject: 안녕하세요, body: 환영합니다}
        after: 3d
    goal: {event: purchase}
  - id: hot
    when: {count: {event: page_view, within: 7d, at_least: 2}}
    then: [{tag: hot}]
  - id: answer
    when: {event: question}
    then:
      - message: {channel: email, subject: 답변, body: 문의 감사합니다}
    limit: every time
  - id: vip-contact
    when:
      all:
        - event: signup
        - account: {tier: gold}
    then: [{tag: vip}]
  - id: returning
    when: {count: {event: page_view, within: 7d, at_least: 3}}
    then: [{tag: returning}]
  - id: crm-note
    when: {event: form_submitted}
    then: [{task: {title: 폼 제출 확인}}]
"""


def write_pack(tmp_path: Path, tests: str, pack: str = SHOP, name: str = "cases.yaml") -> Path:
    folder = tmp_path / "shop"
    (folder / "tests").mkdir(parents=True, exist_ok=True)
    (folder / "pack.yaml").write_text(textwrap.dedent(pack), encoding="utf-8")
    (folder / "tests" / name).write_text(textwrap.dedent(tests), encoding="utf-8")
    return folder


def crmrules(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def line_of(folder: Path, text: str, name: str = "cases.yaml") -> int:
    """The line (1-based) of the test file on which `text` first appears, for file:line:column checks."""

    lines = (folder / "tests" / name).read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)
