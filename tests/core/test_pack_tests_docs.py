"""The test examples users read are true: README's pack and its tests pass as written, and every test case
shown in docs/rule-language.md ("Tests beside the pack") is read without an error."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from crmrules.actions import builtin_table
from crmrules.language import load_pack
from crmrules.testing import check_pack_tests

from .packtests import crmrules

ROOT = Path(__file__).resolve().parents[2]


def _yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.S)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_readme_pack_passes_readme_tests(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = _yaml_blocks(readme.split("## Five minutes of the rule language", 1)[1])
    pack = next(b for b in blocks if b.startswith("pack:"))
    tests = next(b for b in blocks if b.startswith("tests:"))
    folder = tmp_path / "digital-sales"
    (folder / "tests").mkdir(parents=True)
    (folder / "templates").mkdir()
    (folder / "pack.yaml").write_text(pack, encoding="utf-8")
    (folder / "templates" / "contract-reminder.ko.txt").write_text(
        "Subject: {{ lead.name or '고객' }}님, 계약서 서명을 기다리고 있습니다\n계약서를 확인해 주세요.\n", encoding="utf-8")
    (folder / "tests" / "readme.yaml").write_text(tests, encoding="utf-8")
    out = crmrules("test", str(folder))
    assert out.exit_code == 0, out.output
    assert f"{tests.count('- name:')} passed" in out.output


DOC_RULES = ["hot-lead", "nurture", "contract-reminder", "vip-contact", "returning-visitor", "crm-note", "answer",
             "fast-response", "sales-ready"]


def test_every_case_in_the_rule_language_reference_reads_without_error(tmp_path):
    doc = (ROOT / "docs" / "rule-language.md").read_text(encoding="utf-8")
    section = doc.split("## Tests beside the pack", 1)[1]
    cases = [b if b.startswith("tests:") else "tests:\n" + b for b in _yaml_blocks(section)
             if b.startswith(("tests:", "  - name:"))]
    assert len(cases) >= 3
    rules = "\n".join(f"  - id: {r}\n    when: {{event: e}}\n    then: [{{tag: t}}]" for r in DOC_RULES)
    folder = tmp_path / "doc"
    (folder / "tests").mkdir(parents=True)
    (folder / "pack.yaml").write_text(f"pack: doc\nrules:\n{rules}\n", encoding="utf-8")
    for n, case in enumerate(cases):
        (folder / "tests" / f"case{n}.yaml").write_text(textwrap.dedent(case), encoding="utf-8")
    checked = check_pack_tests(load_pack(folder / "pack.yaml"), builtin_table())
    assert [str(e) for e in checked.errors] == []
    assert checked.cases == sum(c.count("- name:") for c in cases)
