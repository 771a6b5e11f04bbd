"""One `PluginContext` per plugin for one deployment: its validated options, folder, metrics, clock and logger.

Why built here and kept: a context is asked for on every push, pull and request, and validating options or
creating a folder each time would be waste; one deployment load (a `crmrules serve`, a test's stand-in) builds
each plugin's context on first use and keeps it. Options that fail validation are not kept: the ValueError names
each bad key, and the next use tries again.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Mapping

from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from .api import Clock, PluginContext, PluginMetrics, validate_settings
from .registry import Registry


class WallClock:
    def now(self) -> float:
        return time.time()


_metrics: "weakref.WeakKeyDictionary[CollectorRegistry, dict[str, PluginMetrics]]" = weakref.WeakKeyDictionary()
_metrics_lock = threading.Lock()


def plugin_metrics(name: str, registry: CollectorRegistry | None) -> PluginMetrics:
    """One `PluginMetrics` per (metrics registry, plugin), so two deployments' contexts sharing a registry (the
    receiver's and a dispatcher's) count into the same series instead of colliding."""

    if registry is None:
        return PluginMetrics(name)
    with _metrics_lock:
        per_plugin = _metrics.setdefault(registry, {})
        if name not in per_plugin:
            per_plugin[name] = PluginMetrics(name, registry)
        return per_plugin[name]


def data_root(store: str | None) -> Path | None:
    """`<store folder>/<store name>.plugins` for a store file; None for a store that is not a file."""

    if not store or store == ":memory:" or "://" in store:
        return None
    path = Path(store)
    return path.parent / f"{path.stem}.plugins"


class PluginContexts:
    """Contexts of the plugins of one deployment (`settings`: its `Settings`, or their `model_dump()`)."""

    def __init__(self, registry: Registry, settings: BaseModel | Mapping[str, Any], *,
                 metrics: CollectorRegistry | None = None, clock: Clock | None = None,
                 data_dir: Path | None = None):
        raw = settings.model_dump() if isinstance(settings, BaseModel) else dict(settings)
        self.registry = registry
        self.sections: dict[str, Any] = dict(raw.get("plugins") or {})
        self.metrics = metrics
        self.clock: Clock = clock or WallClock()
        self._root = data_dir or data_root(raw.get("store"))
        self._made: dict[str, PluginContext[Any]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> PluginContext[Any]:
        """The context of the plugin whose settings section is `name`; a ValueError if those options are bad."""

        with self._lock:
            made = self._made.get(name)
            if made is None:
                made = self._made[name] = self._build(name)
            return made

    def _build(self, name: str) -> PluginContext[Any]:
        model = self.registry.settings.get(name)
        options = validate_settings(name, model, self.sections.get(name)) if model is not None else None
        if self._root is None:  # a store that is no file: the files live as long as this process
            self._root = Path(tempfile.mkdtemp(prefix="crmrules-plugins-"))
        folder = self._root / name
        folder.mkdir(parents=True, exist_ok=True)
        return PluginContext(name=name, options=options, data_dir=folder, metrics=plugin_metrics(name, self.metrics),
                             clock=self.clock, logger=logging.getLogger(f"crmrules.plugins.{name}"))
