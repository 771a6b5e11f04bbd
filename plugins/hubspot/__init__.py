"""crmrules ↔ HubSpot: webhooks in, a poller for backfill, and actions pushed back through hubspot-api-client.

Built only on the public plugin API (`crmrules.api`, `crmrules.config.secret`), as a third party would.

- source `hubspot` (trusted: every webhook is signed with the app's secret): `POST /hooks/hubspot` takes
  HubSpot webhook batches, checks the v3 signature and its freshness, and ingests events (no HubSpot calls
  while HubSpot waits for the answer); its `pull` reads contacts, companies and deals modified since a cursor.
- target `hubspot`: tag/untag, score, set, task, message, each idempotent.

Options live under `plugins.hubspot` in crmrules.yaml (see `settings.py` and README.md); secrets only in
`HUBSPOT_CLIENT_SECRET` (webhook signatures) and `HUBSPOT_ACCESS_TOKEN` (API calls).
"""

from __future__ import annotations

from crmrules.api import (OutboxItem, PluginContext, PullResult, PushFailed, RegisterModel, RegisterSource,
                          RegisterTarget, hookimpl)
from crmrules.config import secret

from . import client as _client
from . import poll, push, webhooks
from .settings import HubSpotSettings

NAME = "hubspot"
TOKEN_ENV = "HUBSPOT_ACCESS_TOKEN"

__all__ = ["NAME", "pull_from_hubspot", "push_to_hubspot", "register_settings", "register_sources",
           "register_targets"]


@hookimpl
def register_settings(register: RegisterModel) -> None:
    register(NAME, HubSpotSettings)


@hookimpl
def register_sources(register: RegisterSource) -> None:
    register(webhooks.SOURCE, blueprint=webhooks.blueprint(), pull=pull_from_hubspot, trusted=True,
             openapi=webhooks.OPENAPI)


@hookimpl
def register_targets(register: RegisterTarget) -> None:
    register(NAME, push_to_hubspot)


def pull_from_hubspot(since: str | None, context: PluginContext[HubSpotSettings]) -> PullResult:
    return poll.pull(since, context.options, _api(context.options))


def push_to_hubspot(item: OutboxItem, context: PluginContext[HubSpotSettings]) -> str:
    return push.push(item, context.options, _api(context.options))


def _api(options: HubSpotSettings) -> _client.Client:
    token = secret(TOKEN_ENV)
    if not token:
        raise PushFailed(f"set {TOKEN_ENV} (or {TOKEN_ENV}_FILE) to a HubSpot private-app or OAuth access token")
    return _client.client_for(token, options.host, options.timeout)
