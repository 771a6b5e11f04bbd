"""Plugin discovery: the `crmrules` entry-point group, like pytest, datasette and llm.

`CRMRULES_LOAD_PLUGINS` (comma-separated entry-point names) limits which installed plugins load, and
`CRMRULES_PLUGINS_PATH` adds plugin modules from files for development (`path/to/plugin.py,...`).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

import pluggy
from pydantic import ValidationError

from . import hookspecs
from .actions import ActionType, as_action_type, builtin_table

_manager: pluggy.PluginManager | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    global _manager
    if _manager is None:
        _manager = _build()
    return _manager


def reset_plugins() -> None:
    """Forget loaded plugins (tests that install a plugin call this to discover it)."""

    global _manager
    _manager = None


def _build() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("crmrules")
    pm.add_hookspecs(hookspecs)
    wanted = os.environ.get("CRMRULES_LOAD_PLUGINS")
    names = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
    for ep in entry_points(group="crmrules"):
        if names is not None and ep.name not in names:
            continue
        if pm.has_plugin(ep.name):
            continue
        pm.register(ep.load(), name=ep.name)
    for raw in filter(None, os.environ.get("CRMRULES_PLUGINS_PATH", "").split(",")):
        path = Path(raw)
        spec = importlib.util.spec_from_file_location(f"crmrules_dev_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"CRMRULES_PLUGINS_PATH: cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        pm.register(module, name=f"path:{path}")
    return pm


def plugin_names() -> list[str]:
    return sorted(name for name, _ in get_plugin_manager().list_name_plugin())


def collect(hook: str) -> dict[str, Any]:
    """Call a `register(name, thing)` hook on every plugin and gather what they registered."""

    found: dict[str, Any] = {}

    def register(name: str, thing: Any = None) -> None:
        if name in found:
            raise ValueError(f"{hook}: {name!r} is registered twice")
        found[name] = thing

    getattr(get_plugin_manager().hook, hook)(register=register)
    return found


def check_settings(sections: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, sections no loaded plugin declared) of the deployment's `plugins:`, each problem naming its key."""

    models = collect("register_settings")
    problems: list[str] = []
    for name, section in sorted(sections.items()):
        if name in models:
            try:
                validate_settings(name, models[name], section)
            except ValueError as exc:
                problems += str(exc).splitlines()
    return problems, sorted(set(sections) - set(models))


def validate_settings(name: str, model: Any, section: Any) -> Any:
    """`plugins.<name>` validated against `model`; a ValueError with one line per problem, each naming its key.

    The one wording of settings errors, for `crmrules check` and for plugins validating their section at use."""

    try:
        return model.model_validate(section or {})
    except ValidationError as exc:
        raise ValueError("\n".join(_problem(name, model, e) for e in exc.errors())) from None


def _problem(name: str, model: Any, error: Any) -> str:
    where = ".".join(["plugins", name, *map(str, error["loc"])])
    if error["type"] != "extra_forbidden":
        return f"{where}: {error['msg']}"
    close = difflib.get_close_matches(str(error["loc"][-1]), list(model.model_fields), n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"the options are: {', '.join(model.model_fields)}"
    return f"{where}: not an option of the {name} plugin; {hint}"


def action_types() -> dict[str, ActionType]:
    """The one table of action types: the built-ins and every plugin's, by name."""

    table = builtin_table()
    for name, registered in collect("register_actions").items():
        if name in table:
            raise ValueError(f"register_actions: {name!r} is a built-in action type")
        table[name] = as_action_type(name, registered)
    return table


def condition_functions() -> dict[str, Callable[[Any, Any], bool]]:
    return collect("register_conditions")
