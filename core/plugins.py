"""Plugin discovery: the `crmrules` entry-point group, like pytest, datasette and llm; and what they provide.

`CRMRULES_LOAD_PLUGINS` (comma-separated entry-point names) limits which installed plugins load, and
`CRMRULES_PLUGINS_PATH` adds plugin modules from files for development (`path/to/plugin.py,...`). The core's
built-in sources (`builtin.py`) load first, always.

A plugin that cannot be imported, implements a hook that does not exist (a misspelling), or claims a name another
plugin has, is left out and reported as one line naming it (`load_errors()`): `crmrules plugins` lists those
lines and exits 1, `crmrules check` warns and goes on, `crmrules serve` refuses to start.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping

import click
import pluggy
from pydantic import BaseModel

from . import builtin
from .actions import ActionType
from .api import validate_settings
from .contexts import PluginContexts
from .registry import LoadedPlugins, PluginInfo, Registry, Source, Target, one_line

__all__ = ["PluginContexts", "Registry", "Source", "Target", "action_types", "add_commands", "check_settings",
           "condition_functions", "contexts_for", "fresh_registry", "get_plugin_manager", "get_registry",
           "load_errors", "plugin_names", "reset_plugins", "settings_models", "sources", "targets",
           "trusted_sources"]

_loaded: LoadedPlugins | None = None
_registry: Registry | None = None


def _load() -> LoadedPlugins:
    global _loaded
    if _loaded is None:
        _loaded = load_plugins()
    return _loaded


def load_plugins() -> LoadedPlugins:
    """Import and register every plugin this process should run; refusals are in `.errors`, never raised."""

    loaded = LoadedPlugins()
    loaded.add(builtin, builtin.NAME, PluginInfo(builtin.NAME, "built in"))
    wanted = os.environ.get("CRMRULES_LOAD_PLUGINS")
    names = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
    for ep in entry_points(group="crmrules"):
        if names is not None and ep.name not in names:
            continue
        if loaded.pm.has_plugin(ep.name):
            continue
        info = PluginInfo(ep.name, f"module {ep.value}")
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin names itself and leaves the others running
            loaded.refuse(info, f"cannot be imported: {one_line(exc)}")
            continue
        loaded.add(module, ep.name, info)
    for raw in filter(None, os.environ.get("CRMRULES_PLUGINS_PATH", "").split(",")):
        path = Path(raw)
        info = PluginInfo(path.stem, f"file {path}")
        try:
            module = _import_file(path)
        except Exception as exc:
            loaded.refuse(info, f"cannot be imported: {one_line(exc)}")
            continue
        loaded.add(module, f"path:{path}", info)
    loaded.finish()
    return loaded


def _import_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"crmrules_dev_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"CRMRULES_PLUGINS_PATH: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def get_plugin_manager() -> pluggy.PluginManager:
    return _load().pm


def get_registry() -> Registry:
    """What the loaded plugins provide, collected once per process (listing, trust, action types, pushes)."""

    global _registry
    if _registry is None:
        _registry = Registry(_load())
    return _registry


def fresh_registry() -> Registry:
    """A new collection from the loaded plugins: a receiver app mounts its own blueprints (their state with it)."""

    return Registry(_load())


def reset_plugins() -> None:
    """Forget loaded plugins (tests that install a plugin call this to discover it)."""

    global _loaded, _registry
    _loaded = _registry = None


def load_errors() -> list[str]:
    """One line per plugin left out, naming it and why."""

    return list(get_registry().errors)


def plugin_names() -> list[str]:
    return sorted(info.name for info in _load().infos.values())


def sources() -> dict[str, Source]:
    return dict(get_registry().sources)


def targets() -> dict[str, Target]:
    return dict(get_registry().targets)


def trusted_sources() -> frozenset[str]:
    return get_registry().trusted_sources()


def action_types() -> dict[str, ActionType]:
    """The one table of action types: the built-ins (registered by `builtin.py`) and every plugin's, by name."""

    return dict(get_registry().actions)


def condition_functions() -> dict[str, Callable[[Any, Any], bool]]:
    return dict(get_registry().conditions)


def settings_models() -> dict[str, type[BaseModel]]:
    return dict(get_registry().settings)


def contexts_for(settings: Any, **kwargs: Any) -> PluginContexts:
    """Plugin contexts for a deployment (its `Settings` or their dict), from the plugins loaded here."""

    return PluginContexts(get_registry(), settings, **kwargs)


def add_commands(cli: click.Group) -> None:
    """Each plugin's `register_commands`; one that raises is reported with the load errors, the others run."""

    registry = get_registry()
    for impl in get_plugin_manager().hook.register_commands.get_hookimpls():
        try:
            impl.function(**{arg: cli for arg in impl.argnames})
        except Exception as exc:
            registry.errors.append(f"{registry.loaded.info(impl.plugin_name).label}: register_commands raised "
                                   f"{one_line(exc)}")


def check_settings(sections: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, sections no loaded plugin declared) of the deployment's `plugins:`, each problem naming its key."""

    models = settings_models()
    problems: list[str] = []
    for name, section in sorted(sections.items()):
        if name in models:
            try:
                validate_settings(name, models[name], section)
            except ValueError as exc:
                problems += str(exc).splitlines()
    return problems, sorted(set(sections) - set(models))
