"""A deployment's own settings (crmrules.yaml): where the store is, which packs run with which variables,
where each action type is pushed, and plugin options. Secrets never live here: only names of
environment variables or files that hold them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        settings = Settings.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"{path}: cannot read settings: {exc}") from None
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise SystemExit("\n".join(lines)) from None
    base = Path(path).parent
    settings.store = _beside(base, settings.store)
    settings.rules = [_beside(base, r) for r in settings.rules]
    return settings


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
