"""crmrules web tracker: Segment-compatible collection endpoints, and on-site messages shown by a small snippet.

A plugin like any third party's: it imports only `crmrules.api` and `crmrules.config.secret`.

- source `web`, registered untrusted: `/v1/*` (see `views.py`), where the stock Segment clients (analytics-next
  in the browser, analytics-python on a server) post unchanged.
- target `web_tracker`: takes `message` actions with `channel: onsite` (route them with `targets:
  {message.onsite: web_tracker}`) and keeps them for the visitor, in the plugin's data folder, until the snippet
  (`/v1/crmrules.js`) shows them, once.

Trust: write keys are public, so anyone can post anything here, and the source says so. The core lets events
of an untrusted source alone only tag, score and show on-site messages; this plugin adds what it can (see
README.md, "Trust").
"""

from __future__ import annotations

from crmrules.api import (ActionNotSupported, OutboxItem, PluginContext, PushFailed, RegisterModel, RegisterSource,
                          RegisterTarget, SendMessage, hookimpl)

from .onsite import open_onsite
from .settings import TrackerSettings, onsite_path

NAME = "web_tracker"

__all__ = ["NAME", "push_onsite", "register_settings", "register_sources", "register_targets"]


@hookimpl
def register_settings(register: RegisterModel) -> None:
    register(NAME, TrackerSettings)


@hookimpl
def register_sources(register: RegisterSource) -> None:
    from .openapi import describe
    from .segment import SOURCE
    from .views import BATCH, CODES, SINGLE, make_blueprint

    register(SOURCE, blueprint=make_blueprint(), trusted=False, openapi=describe(NAME, SINGLE, BATCH, CODES))


@hookimpl
def register_targets(register: RegisterTarget) -> None:
    register(NAME, push_onsite)


def push_onsite(item: OutboxItem, context: PluginContext[TrackerSettings]) -> str:
    action = item.action
    if not isinstance(action, SendMessage) or action.channel != "onsite":
        what = f"message on channel {action.channel!r}" if isinstance(action, SendMessage) else action.type
        raise ActionNotSupported(f"the web tracker only shows messages with channel: onsite, not {what}")
    if item.shadow:
        return "shadow: not shown"
    options = context.options
    if not any(item.identities.get(kind) for kind in options.onsite_lookup):
        raise PushFailed(f"cannot show an on-site message: the lead has no {' or '.join(options.onsite_lookup)} "
                         "(a visitor is found by it; see plugins.web_tracker.onsite_lookup)")
    store = open_onsite(onsite_path(options, context.data_dir))
    try:
        token, stored = store.add(
            key=item.idempotency_key, ids=dict(item.identities), entity_id=item.entity_id, rule=item.rule,
            subject=action.subject, body=action.body, locale=action.locale, ttl=options.onsite_ttl,
            once_per_rule=options.onsite_once_per_rule)  # wall-clock time, as the views that show them
    except ValueError as exc:
        raise PushFailed(f"cannot show an on-site message: {exc}") from None
    return f"onsite {token}" if stored else f"onsite {token} (kept before; not shown twice)"
