"""A deployment's own settings (crmrules.yaml): where the store is, which packs run with which variables,
where each action type is pushed, and plugin options. Secrets never live here: only names of
environment variables or files that hold them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from .language.errors import VarsOrigin
from .language.yamlmarks import DuplicateKey, MarkedDict, load_marked

DEFAULT_CONFIG = "crmrules.yaml"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    store: str = "crmrules.sqlite"
    rules: list[str] = Field(default_factory=lambda: ["rules"])
    vars: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-pack variable overrides")
    targets: dict[str, str] = Field(default_factory=dict,
                                    description="action type (or `default`) → plugin that pushes it")
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    max_body_bytes: int = 1_000_000
    max_attempts: int = 8
    _vars_file: str | None = PrivateAttr(default=None)
    _vars_marks: tuple[dict, dict] = PrivateAttr(default_factory=lambda: ({}, {}))

    def vars_origin(self, complete: bool = True) -> VarsOrigin | None:
        """Where `vars:` was written, for errors in it; None for settings not read from a file."""

        if self._vars_file is None:
            return None
        return VarsOrigin(self._vars_file, self._vars_marks[0], self._vars_marks[1], complete)

    def target_for(self, action_type: str, channel: str | None = None) -> str | None:
        for key in (f"{action_type}.{channel}" if channel else None, action_type, "default"):
            if key and key in self.targets:
                return self.targets[key]
        return None


def load_settings(path: str | None = None) -> Settings:
    """Settings from a file (or $CRMRULES_CONFIG, or ./crmrules.yaml if present), else defaults."""

    path = path or os.environ.get("CRMRULES_CONFIG")
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    if path is None:
        return Settings()
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        marked = load_marked(text) if isinstance(data, dict) and "vars" in data else None
        if isinstance(marked, MarkedDict) and isinstance(marked.get("vars"), dict):
            data["vars"] = marked["vars"]  # read as packs are, so an override means what it would in the pack
        settings = Settings.model_validate(data)
    except (OSError, yaml.YAMLError, DuplicateKey) as exc:
        raise SystemExit(f"{path}: cannot read settings: {exc}") from None
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise SystemExit("\n".join(lines)) from None
    settings._vars_file = path
    if isinstance(marked, MarkedDict) and isinstance(marked.get("vars"), MarkedDict):
        settings._vars_marks = _var_marks(marked["vars"])
    base = Path(path).parent
    settings.store = _beside(base, settings.store)
    settings.rules = [_beside(base, r) for r in settings.rules]
    return settings


def _var_marks(section: MarkedDict) -> tuple[dict, dict]:
    """(pack,) and (pack, name) → line and column of the key; (pack, name) → of the value."""

    keys: dict[tuple[str, ...], tuple[int, int]] = {}
    values: dict[tuple[str, str], tuple[int, int]] = {}
    for pack, names in section.items():
        keys[(str(pack),)] = section.key_marks[pack]
        if isinstance(names, MarkedDict):
            for name in names:
                keys[(str(pack), str(name))] = names.key_marks[name]
                values[(str(pack), str(name))] = names.value_marks[name]
    return keys, values


def _beside(base: Path, path: str) -> str:
    """Paths in the file are relative to the file, shown without `..` detours (error messages name them)."""

    return path if Path(path).is_absolute() or "://" in path else os.path.normpath(base / path)


def secret(name: str) -> str | None:
    """A secret from the environment, or from the file named by NAME_FILE (Docker/Kubernetes secrets)."""

    value = os.environ.get(name)
    if value:
        return value
    file = os.environ.get(f"{name}_FILE")
    if file and Path(file).is_file():
        return Path(file).read_text(encoding="utf-8").strip()
    return None
