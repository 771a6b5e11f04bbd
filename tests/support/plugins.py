"""Call a plugin's registered push and pull as the dispatcher and the poller do: found by name in the registry of
the installed plugins, with the context the deployment's settings give its plugin.

    push("hubspot", item, {"plugins": {"hubspot": {...}}})
    pull("salesforce", None, {"plugins": {"salesforce": {...}}})
"""

from __future__ import annotations

from typing import Any

from crmrules.api import OutboxItem, PluginContext, PullResult
from crmrules.plugins import contexts_for, get_registry


def context(plugin: str, settings: Any) -> PluginContext[Any]:
    """`plugin`'s context for these deployment settings (a ValueError naming the key if its options are bad)."""

    return contexts_for(settings).get(plugin)


def push(target: str, item: OutboxItem, settings: Any) -> str:
    found = get_registry().targets[target]
    return found.push(item, context(found.plugin, settings))


def pull(source: str, since: str | None, settings: Any) -> PullResult:
    found = get_registry().sources[source]
    assert found.pull is not None, f"source {source!r} has no pull"
    return found.pull(since, context(found.plugin, settings))
