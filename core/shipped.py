"""What ships inside the crmrules package: the rule packs (rules/), the demo events (examples/demo/) and the
commented crmrules.yaml that `crmrules init` writes.

Found through importlib.resources, never beside this file's folder: in a repository clone (editable install) the
data packages are the repository's own rules/ and examples/demo/, after `pip install .` they are copies inside
site-packages (pyproject's package-dir maps `crmrules._packs` and `crmrules._demo`), and both must work.
"""

from __future__ import annotations

import fnmatch
from importlib import resources
from pathlib import Path

PACKS = "crmrules._packs"
DEMO = "crmrules._demo"
PREFIX = "shipped:"
"""In `rules:` of crmrules.yaml, `shipped:*` is every shipped pack and `shipped:lead-scoring` one of them."""


def packs_folder() -> Path:
    """The folder of the shipped packs (one sub-folder per pack)."""

    return _folder(PACKS)


def demo_folder() -> Path:
    """The folder holding the demo's events.jsonl."""

    return _folder(DEMO)


def starter_config() -> str:
    """The commented crmrules.yaml that `crmrules init` writes."""

    return resources.files("crmrules").joinpath("starter.yaml").read_text(encoding="utf-8")


def pack_names() -> list[str]:
    root = packs_folder()
    return sorted(child.name for child in root.iterdir() if (child / "pack.yaml").is_file())


def resolve(entry: str) -> list[str]:
    """`shipped:<pattern>` → the folders of the shipped packs whose names match (fnmatch); ValueError if none."""

    pattern = entry[len(PREFIX):].strip()
    if pattern in ("*", ""):
        return [str(packs_folder())]
    names = [name for name in pack_names() if fnmatch.fnmatchcase(name, pattern)]
    if not names:
        raise ValueError(f"{entry!r} matches no shipped pack (shipped: {', '.join(pack_names())}; "
                         f"`{PREFIX}*` is all of them)")
    return [str(packs_folder() / name) for name in names]


def _folder(package: str) -> Path:
    root = resources.files(package)
    if not isinstance(root, Path):  # a zipped install: the loaders read folders from disk
        raise RuntimeError(f"{package} is not installed as files on disk ({root}); reinstall crmrules "
                           "with pip (not zipped)")
    return root
