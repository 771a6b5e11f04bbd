"""crmrules for Salesforce: record changes in (Outbound Messages, Flow callouts, polling), actions out (REST).

A plugin like any third party's: it imports only `crmrules.api` and `crmrules.config.secret`.

- source `salesforce` (trusted: Outbound Messages are checked by organization id and optional token, Flow
  callouts by a shared secret): `/hooks/salesforce/outbound` and `/hooks/salesforce/flow` (`views.py`), and a
  pull of Lead, Contact, Account and Opportunity by LastModifiedDate (`poller.py`).
- target `salesforce`: set, tag, untag, score, task and message (`push.py`) with simple-salesforce
  (`client.py`), telling throttling and outages (retry) from bad data (dead letter).

Route actions here with `targets: {task: salesforce, ...}` in crmrules.yaml; options live under
`plugins: {salesforce: {...}}` (`settings.py`, and README.md for all of them).
"""

from __future__ import annotations

from crmrules.api import (OutboxItem, PluginContext, PullResult, RegisterModel, RegisterSource, RegisterTarget,
                          hookimpl)

from .settings import NAME, SalesforceSettings

__all__ = ["NAME", "pull_from_salesforce", "push_to_salesforce", "register_settings", "register_sources",
           "register_targets"]


@hookimpl
def register_settings(register: RegisterModel) -> None:
    register(NAME, SalesforceSettings)


@hookimpl
def register_sources(register: RegisterSource) -> None:
    from .views import OPENAPI, make_blueprint

    register(NAME, blueprint=make_blueprint(), pull=pull_from_salesforce, trusted=True, openapi=OPENAPI)


@hookimpl
def register_targets(register: RegisterTarget) -> None:
    register(NAME, push_to_salesforce)


def pull_from_salesforce(since: str | None, context: PluginContext[SalesforceSettings]) -> PullResult:
    from . import poller

    return poller.pull(since, context.options)


def push_to_salesforce(item: OutboxItem, context: PluginContext[SalesforceSettings]) -> str:
    from . import push

    return push.push(item, context.options)
