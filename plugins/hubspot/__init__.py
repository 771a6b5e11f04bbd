"""crmrules ↔ HubSpot: webhooks in, a poller for backfill, and actions pushed back through hubspot-api-client.

Built only on the public plugin API (`crmrules.api`, `crmrules.config.secret`), as a third party would.

- `register_sources`: `POST /hooks/hubspot` takes HubSpot webhook batches, checks the v3 signature and its
  freshness, and ingests events (no HubSpot calls while HubSpot waits for the answer).
- `pull("hubspot", since, settings)`: contacts, companies and deals modified since a cursor.
- `push_action("hubspot", item, settings)`: tag/untag, score, set, task, message, each idempotent.

Options live under `plugins.hubspot` in crmrules.yaml (see `settings.py` and README.md); secrets only in
`HUBSPOT_CLIENT_SECRET` (webhook signatures) and `HUBSPOT_ACCESS_TOKEN` (API calls).
"""

from __future__ import annotations

from typing import Any, Callable

from crmrules.api import OutboxItem, PullResult, PushFailed, hookimpl
from crmrules.config import secret

from . import client as _client
from . import poll, push, webhooks
from .settings import HubSpotSettings, parse, section

NAME = "hubspot"
TOKEN_ENV = "HUBSPOT_ACCESS_TOKEN"

__all__ = ["NAME", "pull", "push_action", "register_sources"]


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, HubSpotSettings)


@hookimpl
def register_sources(register: Callable[..., None]) -> None:
    register(NAME, webhooks.blueprint())


@hookimpl
def pull(source: str, since: str | None, settings: dict[str, Any]) -> PullResult | None:
    if source != NAME:
        return None
    options = _options(settings)
    return poll.pull(since, options, _api(options))


@hookimpl
def push_action(target: str, item: OutboxItem, settings: dict[str, Any]) -> str | None:
    if target != NAME:
        return None
    options = _options(settings)
    return push.push(item, options, _api(options))


def _options(raw: dict[str, Any] | None) -> HubSpotSettings:
    try:
        return parse(section(raw))
    except ValueError as exc:
        raise PushFailed(str(exc)) from None


def _api(options: HubSpotSettings) -> _client.Client:
    token = secret(TOKEN_ENV)
    if not token:
        raise PushFailed(f"set {TOKEN_ENV} (or {TOKEN_ENV}_FILE) to a HubSpot private-app or OAuth access token")
    return _client.client_for(token, options.host, options.timeout)
