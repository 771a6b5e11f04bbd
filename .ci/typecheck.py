"""mypy over core/ and plugins/ under their import names (crmrules, crmrules_hubspot, ...).

The packages are mapped from folders (`crmrules` is `core/`), which an editable install hides behind an
import hook mypy cannot follow; so this lays symlinks named as the packages in a temporary folder, runs mypy
there with pyproject's [tool.mypy], and prints paths as they are in the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping: dict[str, str] = {package: folder for package, folder in project["tool"]["setuptools"]["package-dir"].items()
                               if "." not in package}  # crmrules._packs, crmrules._demo: data, no code
    with tempfile.TemporaryDirectory(prefix="crmrules-typecheck-") as tree:
        for package, folder in mapping.items():
            os.symlink(ROOT / folder, Path(tree) / package)
        args = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                *(f"-p{package}" for package in mapping), *sys.argv[1:]]
        run = subprocess.run(args, cwd=tree, capture_output=True, text=True)
    out = run.stdout + run.stderr
    lines = []
    for line in out.splitlines():
        head, sep, rest = line.partition(":")
        first, _, tail = head.partition("/")
        if sep and first in mapping:
            line = f"{mapping[first]}/{tail}{sep}{rest}"
        lines.append(line)
    print("\n".join(lines))
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
