"""Rule tests that ship beside the packs (`crmrules test`, `crmrules check`), in the spirit of `opa test`.

A test file (`<pack>/tests/*.yaml`) gives records, timed events and what should (and should not) happen;
docs/rule-language.md ("Tests beside the pack") describes every field. The parts:

- `cases.py` reads a file strictly: every mistake located, with a did-you-mean; a case with one is not run.
- `patterns.py` reads the actions a case names against the action table (`ActionType.expect`) and
  recognises them among what was done, with when each goes out and whether it was cancelled.
- `run.py` replays a case on a fresh SQLite store; `verdict.py` holds its expectations against that.
- `suite.py` runs a pack's files; `report.py` prints them, as text, JSON, JUnit XML and coverage.
"""

from .cases import read_test_file, test_files
from .shapes import Case
from .report import Coverage, as_json, coverage, failure_text, trail_lines, write_junit
from .suite import CaseResult, Checked, check_pack_tests, run_pack_tests

__all__ = ["Case", "CaseResult", "Checked", "Coverage", "as_json", "check_pack_tests", "coverage", "failure_text",
           "read_test_file", "run_pack_tests", "test_files", "trail_lines", "write_junit"]
