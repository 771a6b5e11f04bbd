"""A mistake in crmrules.yaml's `vars:` is reported in crmrules.yaml, at its line, not in the pack that uses it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner

from crmrules.cli import cli

REPO = Path(__file__).resolve().parents[2]


def crmrules(*args, cwd):
    return subprocess.run([sys.executable, "-m", "crmrules.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_the_sidecar_example_with_two_typos(tmp_path):
    """The shipped example with a misspelt name and a letter O for a zero, checked the way an admin does."""
    shutil.copytree(REPO / "rules" / "lead-scoring", tmp_path / "rules" / "lead-scoring")
    (tmp_path / "deploy").mkdir()
    example = (REPO / "examples" / "sidecar" / "crmrules.yaml").read_text(encoding="utf-8")
    assert "    sales_threshold: 70 " in example
    broken = example.replace("[../../rules]", "[../rules/lead-scoring]").replace(
        "    sales_threshold: 70 ", "    sales_thresold: 70\n    sales_threshold: 7O ")
    (tmp_path / "deploy" / "crmrules.yaml").write_text(broken, encoding="utf-8")
    line = broken.splitlines().index("    sales_thresold: 70") + 1
    use = next(i for i, text in enumerate((tmp_path / "rules/lead-scoring/pack.yaml").read_text().splitlines(), 1)
               if 'at_least: "${sales_threshold}"' in text)

    out = crmrules("--config", "deploy/crmrules.yaml", "check", cwd=tmp_path)

    assert out.returncode == 1
    assert out.stderr.splitlines()[:2] == [
        f"deploy/crmrules.yaml:{line}:5: vars.lead-scoring.sales_thresold: unknown variable of pack lead-scoring; "
        "did you mean 'sales_threshold'?",
        f"deploy/crmrules.yaml:{line + 1}:22: vars.lead-scoring.sales_threshold: '7O' is not a number "
        f"(used at rules/lead-scoring/pack.yaml:{use}:32)",
    ]
    assert "2 error(s)" in out.stderr


PACK = """\
pack: 환영
vars:
  window: 7d
  views: 2
  stages: [a, b]
  greeting: 안녕하세요
rules:
  - id: hot
    when:
      all:
        - count: {event: page_view, within: "${window}", at_least: "${views}"}
        - count: {event: page_view, within: "1d${window}", at_least: 1}
        - lead: {stage: {in: "${stages}"}}
    then: [{tag: "${greeting}"}]
"""


def check(tmp_path: Path, vars_text: str, *paths: str) -> tuple[int, list[str]]:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "welcome.yaml").write_text(PACK, encoding="utf-8")
    (tmp_path / "rules" / "other.yaml").write_text("pack: other\nrules: []\n", encoding="utf-8")
    config = tmp_path / "crmrules.yaml"
    config.write_text("rules: [rules]\nvars:\n" + textwrap.indent(textwrap.dedent(vars_text).lstrip("\n"), "  "), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "check", *paths])
    prefix = str(tmp_path) + "/"
    return result.exit_code, [line.replace(prefix, "") for line in result.output.splitlines()]


def test_a_good_override_is_used(tmp_path):
    code, lines = check(tmp_path, """
        환영: {window: 14d, views: 3, stages: [c], greeting: 반갑습니다}
    """)
    assert code == 0, lines


def test_each_mistake_at_its_own_line_with_where_it_is_used(tmp_path):
    code, lines = check(tmp_path, """
        환영:
          windw: 14d
          views: 셋
          window: 2 weeks
          stages: {a: 1}
        other: {}
    """)
    assert code == 1
    assert lines[:-1] == [
        "crmrules.yaml:4:5: vars.환영.windw: unknown variable of pack 환영; did you mean 'window'?",
        "crmrules.yaml:5:12: vars.환영.views: '셋' is not a number (used at rules/welcome.yaml:11:68)",
        "crmrules.yaml:6:13: vars.환영.window: '2 weeks' is not a duration; write 2w (used at rules/welcome.yaml:11:45)",
        "crmrules.yaml:6:13: vars.환영.window: '1d2 weeks' is not a duration; write a number and a unit, e.g. 30m, "
        "24h, 7d, 2w, 1y or 1bh (used at rules/welcome.yaml:12:45 in '1d${window}')",
        "crmrules.yaml:7:13: vars.환영.stages: `in:` takes a list, e.g. [a, b] (used at rules/welcome.yaml:13:30)",
    ]


def test_a_pack_name_that_is_not_loaded(tmp_path):
    code, lines = check(tmp_path, """
        환영: {}
        othr: {views: 1}
    """)
    assert code == 1
    assert lines[0] == "crmrules.yaml:4:3: vars.othr: no pack named 'othr' is loaded; did you mean 'other'?"
    # checking fewer packs than the deployment runs is not a mistake
    code, lines = check(tmp_path, "환영: {}\nothr: {views: 1}\n", str(tmp_path / "rules" / "welcome.yaml"))
    assert code == 0, lines


def test_overrides_read_like_the_pack(tmp_path):
    """`no` and dates stay text in crmrules.yaml's vars as in the pack (YAML 1.2 booleans)."""
    code, lines = check(tmp_path, """
        환영: {greeting: no}
    """)
    assert code == 0, lines
