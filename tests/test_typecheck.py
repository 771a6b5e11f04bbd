"""mypy over core/ and plugins/ is part of the suite, so the README's one test command (and CI) checks types.

The configuration is pyproject's [tool.mypy]: strict on the public plugin surface (crmrules.api, hookspecs,
models, store protocols), check_untyped_defs elsewhere. `.ci/typecheck.py` is the same run by hand.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_core_and_plugins_have_no_type_errors() -> None:
    run = subprocess.run([sys.executable, str(ROOT / ".ci" / "typecheck.py")], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, f"mypy found errors:\n{run.stdout}{run.stderr}"
    assert "Success: no issues found" in run.stdout, run.stdout
