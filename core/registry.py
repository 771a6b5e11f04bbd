"""What the loaded plugins provide, by name: sources, targets, action types, conditions and settings models.

Why by name: the core routes by name (`targets:` in crmrules.yaml, an event's `source`), so it asks each plugin
once what it provides, remembers who provides what, and refuses a second plugin claiming a name already taken
instead of letting the first answer win. Trust is a property of a registered source; a source nobody
declared is untrusted. Every refusal is one line naming the plugin (`Registry.errors`), for `crmrules plugins`,
`crmrules check` and `crmrules serve`.

`LoadedPlugins` is the plugin manager after loading (plugins/ does the discovery); a `Registry` is one
collection of their registrations. Each receiver app collects its own, so each gets fresh blueprints.
"""

from __future__ import annotations

import difflib
import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pluggy
from flask import Blueprint
from pydantic import BaseModel

from . import hookspecs
from .actions import ActionType, as_action_type
from .api import Pusher, Puller

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A source, target, action or settings name: it lands in crmrules.yaml, metrics labels and `Event.source`."""

RENAMED = {"push_action": "register_targets", "pull": "register_sources"}
"""Hooks that are gone, and the hook that took their place (for the did-you-mean of a refused hook)."""


@dataclass(frozen=True)
class PluginInfo:
    """Who a plugin is, for messages: its name and where it came from (an entry point's module, a file)."""

    name: str
    origin: str

    @property
    def label(self) -> str:
        return f"plugin {self.name!r} ({self.origin})"


@dataclass(frozen=True)
class Source:
    name: str
    plugin: str
    """The name of the plugin's context (its settings section) that pulls and views run with."""
    provider: PluginInfo
    blueprint: Blueprint | None = None
    pull: Puller | None = None
    trusted: bool = False
    openapi: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Target:
    name: str
    plugin: str
    provider: PluginInfo
    push: Pusher


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


class LoadedPlugins:
    """The plugin manager, what is registered in it, and every plugin refused while loading (one line each)."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("crmrules")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.errors: list[str] = []

    def refuse(self, info: PluginInfo, why: str) -> None:
        self.errors.append(f"{info.label}: {why}")

    def add(self, plugin: object, key: str, info: PluginInfo) -> bool:
        """Register `plugin` under `key`, unless a hook of it matches no spec (a misspelling) or its signature."""

        try:
            self.pm.register(plugin, name=key)
        except pluggy.PluginValidationError as exc:  # a hook whose arguments are not the spec's
            self.refuse(info, self._wrong_arguments(plugin, str(exc)))
            return False
        except ValueError as exc:  # the same module registered twice (two entry points naming it)
            self.refuse(info, one_line(exc))
            return False
        unknown = [caller.name for caller in self.pm.get_hookcallers(plugin) or [] if not caller.has_spec()
                   for impl in caller.get_hookimpls() if impl.plugin is plugin and not impl.optionalhook]
        if unknown:
            self.pm.unregister(plugin)
            for name in unknown:
                self.refuse(info, f"{name!r} is not a crmrules hook{_did_you_mean(name)}")
            return False
        self.infos[key] = info
        return True

    def _wrong_arguments(self, plugin: object, message: str) -> str:
        found = re.search(r"for hook '(\w+)'", message)
        caller = getattr(self.pm.hook, found.group(1), None) if found else None
        function = getattr(plugin, found.group(1), None) if found else None
        if caller is None or caller.spec is None or not callable(function):
            return " ".join(message.split())
        written = ", ".join(inspect.signature(function).parameters)
        return (f"{caller.name}({written}) does not match the hook; crmrules calls "
                f"{caller.name}({', '.join(caller.spec.argnames)})")

    def finish(self) -> None:
        """pluggy's own check that every hook implemented has a spec; `add` refused those already, so this only
        guards against a plugin registered some other way."""

        while True:
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                key = self.pm.get_name(exc.plugin) or repr(exc.plugin)
                self.refuse(self.infos.pop(key, PluginInfo(key, "registered directly")), str(exc))
                self.pm.unregister(exc.plugin)

    def info(self, key: str) -> PluginInfo:
        return self.infos.get(key) or PluginInfo(key, "registered directly")


def _did_you_mean(name: str) -> str:
    specs = [n for n in dir(hookspecs) if n.startswith("register_")]
    close = difflib.get_close_matches(name, [*specs, *RENAMED], n=1, cutoff=0.6)
    if not close:
        return f"; the hooks are {', '.join(specs)}"
    return f" (did you mean {RENAMED.get(close[0], close[0])!r}?)"


class Registry:
    """One collection of everything the loaded plugins register, with the plugin behind each name."""

    def __init__(self, loaded: LoadedPlugins):
        self.loaded = loaded
        self.errors: list[str] = list(loaded.errors)
        self.settings: dict[str, type[BaseModel]] = {}
        self.sources: dict[str, Source] = {}
        self.targets: dict[str, Target] = {}
        self.actions: dict[str, ActionType] = {}  # built-in and plugins' alike: the one table (crmrules.actions)
        self.conditions: dict[str, Callable[[Any, Any], bool]] = {}
        self.provided: dict[str, list[str]] = {key: [] for key in loaded.infos}
        """plugin key → what it registered, as `crmrules plugins` lists it."""
        self._section: dict[str, str] = {}
        self._owners: dict[str, dict[str, PluginInfo]] = {}
        self._collect("register_settings", self._register_settings)
        self._collect("register_sources", self._register_source)
        self._collect("register_targets", self._register_target)
        self._collect("register_actions", self._register_action)
        self._collect("register_conditions", self._register_condition)

    @classmethod
    def of(cls, plugins: Mapping[str, object]) -> "Registry":
        """The core's built-in sources plus these plugin modules (name → module): for tests and embedders."""

        from . import builtin

        loaded = LoadedPlugins()
        loaded.add(builtin, builtin.NAME, PluginInfo(builtin.NAME, "built in"))
        for name, module in plugins.items():
            loaded.add(module, name, PluginInfo(name, f"module {getattr(module, '__name__', module)}"))
        loaded.finish()
        return cls(loaded)

    # -------------------------------------------------------------- what callers ask

    def trusted_sources(self) -> frozenset[str]:
        """Sources whose events vouch for their ids; every other source, registered or not, is untrusted."""

        return frozenset(name for name, source in self.sources.items() if source.trusted)

    def plugin_name(self, key: str) -> str:
        """The name a plugin's context goes by: the section it declared settings for, else its own name."""

        return self._section.get(key) or self.loaded.info(key).name

    def describe(self) -> list[str]:
        """One line per plugin: what it provides by name (`crmrules plugins`)."""

        lines = []
        for key, info in self.loaded.infos.items():
            provided = "; ".join(self.provided.get(key, [])) or "nothing registered"
            lines.append(f"{info.name} ({info.origin}): {provided}")
        return lines

    # -------------------------------------------------------------- collecting

    def _collect(self, hook: str, make: Callable[[str, PluginInfo], Callable[..., None]]) -> None:
        caller: pluggy.HookCaller = getattr(self.loaded.pm.hook, hook)
        for impl in caller.get_hookimpls():
            if impl.wrapper or impl.hookwrapper:
                continue  # a wrapper registers nothing of its own
            info = self.loaded.info(impl.plugin_name)
            register = make(impl.plugin_name, info)
            try:
                impl.function(**{arg: register for arg in impl.argnames})
            except Exception as exc:  # a plugin's bug names the plugin, and the others still load
                self.errors.append(f"{info.label}: {hook} raised {one_line(exc)}")

    def _claim(self, what: str, name: Any, key: str, info: PluginInfo) -> bool:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            self.errors.append(f"{info.label}: {name!r} is not a valid {what} name (letters, digits, '_', '.', "
                               "'-', at most 64)")
            return False
        owners = self._owners.setdefault(what, {})
        if name in owners:
            self.errors.append(f"{info.label}: {what} {name!r} is already registered by {owners[name].label}")
            return False
        owners[name] = info
        return True

    def _note(self, key: str, text: str) -> None:
        self.provided.setdefault(key, []).append(text)

    def _register_settings(self, key: str, info: PluginInfo) -> Callable[..., None]:
        def register(name: str, model: type[BaseModel]) -> None:
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                self.errors.append(f"{info.label}: the settings of {name!r} must be a pydantic model class")
            elif self._claim("settings section", name, key, info):
                self.settings[name] = model
                self._section.setdefault(key, name)
                self._note(key, f"settings plugins.{name}")
        return register

    def _register_source(self, key: str, info: PluginInfo) -> Callable[..., None]:
        def register(name: str, *, blueprint: Blueprint | None = None, pull: Puller | None = None,
                     trusted: bool = False, openapi: Mapping[str, Any] | None = None) -> None:
            problem = (("blueprint must be a flask.Blueprint" if blueprint is not None
                        and not isinstance(blueprint, Blueprint) else None)
                       or ("pull must be callable" if pull is not None and not callable(pull) else None)
                       or ("trusted must be True or False" if not isinstance(trusted, bool) else None)
                       or ("openapi must be a mapping" if openapi is not None
                           and not isinstance(openapi, Mapping) else None))
            if problem:
                self.errors.append(f"{info.label}: source {name!r}: {problem}")
            elif self._claim("source", name, key, info):
                self.sources[name] = Source(name, self.plugin_name(key), info, blueprint, pull, trusted, openapi)
                kinds = [k for k, on in (("trusted", trusted), ("untrusted", not trusted), ("webhooks", blueprint),
                                         ("pull", pull)) if on]
                self._note(key, f"source {name} ({', '.join(kinds)})")
        return register

    def _register_target(self, key: str, info: PluginInfo) -> Callable[..., None]:
        def register(name: str, push: Pusher) -> None:
            if not callable(push):
                self.errors.append(f"{info.label}: target {name!r}: push must be callable")
            elif self._claim("target", name, key, info):
                self.targets[name] = Target(name, self.plugin_name(key), info, push)
                self._note(key, f"target {name}")
        return register

    def _register_action(self, key: str, info: PluginInfo) -> Callable[..., None]:
        def register(name: str, model: type[BaseModel] | ActionType) -> None:
            if not isinstance(model, ActionType) and not (isinstance(model, type) and issubclass(model, BaseModel)):
                self.errors.append(f"{info.label}: action {name!r} must be a pydantic model class")
            elif self._claim("action", name, key, info):
                try:
                    self.actions[name] = as_action_type(name, model)
                except (TypeError, ValueError) as exc:
                    self.errors.append(f"{info.label}: {exc}")
                    return
                self._note(key, f"action {name}")
        return register

    def _register_condition(self, key: str, info: PluginInfo) -> Callable[..., None]:
        def register(name: str, function: Callable[[Any, Any], bool]) -> None:
            if not callable(function):
                self.errors.append(f"{info.label}: condition {name!r} must be callable")
            elif self._claim("condition", name, key, info):
                self.conditions[name] = function
                self._note(key, f"condition {name}")
        return register
