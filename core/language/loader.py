"""Finding packs on disk: a pack is a folder with pack.yaml (plus templates/ and tests/) or one .yaml file.

`load_rules` loads them as a deployment runs them: with the plugins' action types and condition functions
known, and with the variable overrides of crmrules.yaml."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from .. import plugins
from . import ast
from .errors import PackError, RuleError, VarsOrigin
from .parser import parse_pack_text
from .yamlmarks import MAX_BYTES

if TYPE_CHECKING:  # only for annotations: the language reads settings and action types, it does not load them
    from ..actions import ActionType
    from ..config import Settings


def pack_files(paths: Iterable[str | Path]) -> list[Path]:
    """Every pack file under the given paths, in a stable order; tests/ folders are not packs."""

    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif (path / "pack.yaml").is_file():
            found.append(path / "pack.yaml")
        elif path.is_dir():
            for child in sorted(path.iterdir()):
                if child.name in ("tests", "templates") or child.name.startswith("."):
                    continue
                if child.is_dir() or child.suffix in (".yaml", ".yml"):
                    found.extend(pack_files([child]))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found


def load_pack(file: str | Path, overrides: dict[str, Any] | None = None,
              action_types: Mapping[str, ActionType] | None = None,
              condition_functions: dict[str, Any] | None = None, origin: VarsOrigin | None = None) -> ast.Pack:
    """A pack from its file, or from its folder (the `pack.yaml` in it, as `ast.Pack.path` names a folder pack)."""

    file = Path(file)
    if file.is_dir():
        file = file / "pack.yaml"
    pack_dir = file.parent if file.name == "pack.yaml" else None
    try:
        size = file.stat().st_size
        if size > MAX_BYTES:  # refused before it is read: a 50 MB pack is a mistake, not a playbook
            raise PackError([RuleError(str(file), 1, 1, "", f"the file is {size / 1e6:.1f} MB; packs are read up "
                                       f"to {MAX_BYTES / 1e6:g} MB")])
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PackError([RuleError(str(file), 1, 1, "", f"not UTF-8 text: {exc}")]) from None
    return parse_pack_text(text, str(file), pack_dir, overrides, action_types, condition_functions, origin)


def load_packs(paths: Iterable[str | Path], overrides: dict[str, dict[str, Any]] | None = None,
               action_types: Mapping[str, ActionType] | None = None,
               condition_functions: dict[str, Any] | None = None,
               origin: VarsOrigin | None = None) -> list[ast.Pack]:
    """Load every pack; raise one PackError with the errors of all of them. `origin` says where `overrides`
    were written, so that their mistakes are reported there."""

    packs: list[ast.Pack] = []
    errors: list[RuleError] = []
    named: set[str] | None = set()  # names of the packs as written (None: one could not be read)
    paths = list(paths)
    files: list[Path] = []
    for path in paths:  # a folder with no pack in it is a mistake (a wrong path), not a deployment of no rules
        found = pack_files([path])
        if not found:
            errors.append(RuleError(str(path), 0, 0, "", "no rule packs here: a pack is a folder with pack.yaml, "
                                    "or a .yaml file"))
        files += found
    for file in files:
        try:
            pack = load_pack(file, None, action_types, condition_functions)
        except PackError as exc:
            errors.extend(exc.errors)
            named = None  # the pack itself is broken: its name is not known
            continue
        if named is not None:
            named.add(pack.name)
        if overrides and pack.name in overrides:
            try:
                pack = load_pack(file, overrides[pack.name], action_types, condition_functions, origin)
            except PackError as exc:  # the pack is fine; its overrides are not
                errors.extend(exc.errors)
                continue
        packs.append(pack)
    names: dict[str, str] = {}
    for pack in packs:
        if pack.name in names:
            errors.append(RuleError(pack.path, 1, 1, "pack", f"pack name {pack.name!r} is also used by {names[pack.name]}"))
        names[pack.name] = pack.path
    if origin is not None and origin.complete and named is not None:
        for name in overrides or {}:
            if name not in named:
                close = difflib.get_close_matches(str(name), sorted(named), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"the packs are {', '.join(sorted(named)) or 'none'}"
                errors.append(origin.error((str(name),), f"no pack named {name!r} is loaded; {hint}"))
    if errors:
        raise PackError(errors)
    return packs


def load_rules(paths: list[str], settings: Settings | None = None) -> list[ast.Pack]:
    """Packs with the plugins' actions and conditions known, and the deployment's variable overrides.

    Here, not in the command line, because `check`, the demo and a running sidecar's reload must load packs
    the same way."""

    # packs named under `vars:` must be loaded, unless the command was given fewer packs than the deployment's
    origin = settings.vars_origin(complete=[str(p) for p in paths] == list(settings.rules)) if settings else None
    return load_packs(paths, (settings.vars if settings else None), plugins.action_types(),
                      plugins.condition_functions(), origin)
