"""crmrules for Salesforce: record changes in (Outbound Messages, Flow callouts, polling), actions out (REST).

A plugin like any third party's: it imports only `crmrules.api` and `crmrules.config.secret`.

- `register_sources` mounts `/hooks/salesforce/outbound` and `/hooks/salesforce/flow` (`views.py`).
- `pull(source="salesforce", ...)` polls Lead, Contact, Account and Opportunity by LastModifiedDate (`poller.py`).
- `push_action(target="salesforce", ...)` applies set, tag, untag, score, task and message (`push.py`) with
  simple-salesforce (`client.py`), telling throttling and outages (retry) from bad data (dead letter).

Route actions here with `targets: {task: salesforce, ...}` in crmrules.yaml; options live under
`plugins: {salesforce: {...}}` (`settings.py`, and README.md for all of them).
"""

from __future__ import annotations

from typing import Any, Callable

from crmrules.api import PullResult, PushFailed, hookimpl

from .settings import NAME, SalesforceSettings, parse, split

__all__ = ["NAME", "pull", "push_action", "register_sources"]


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, SalesforceSettings)


@hookimpl
def register_sources(register: Callable[..., None]) -> None:
    from .views import make_blueprint

    register(NAME, make_blueprint())


@hookimpl
def pull(source: str, since: str | None, settings: dict[str, Any]) -> PullResult | None:
    if source != NAME:
        return None
    from . import poller

    raw, overrides = split(settings)
    return poller.pull(since, parse(raw), overrides.get("session"))  # a bad option: ValueError, logged


@hookimpl
def push_action(target: str, item: Any, settings: dict[str, Any]) -> str | None:
    if target != NAME:
        return None
    from . import push

    raw, overrides = split(settings)
    try:
        options = parse(raw)
    except ValueError as exc:
        raise PushFailed(str(exc)) from None
    return push.push(item, options, overrides.get("session"))
