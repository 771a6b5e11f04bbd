"""crmrules web tracker: Segment-compatible collection endpoints, and on-site messages shown by a small snippet.

A plugin like any third party's: it imports only `crmrules.api` and `crmrules.config.secret`.

- `register_sources` mounts `/v1/*` (see `views.py`): the stock Segment clients (analytics-next in the browser,
  analytics-python on a server) post here unchanged. Events are stored with `source="web"`.
- `push_action` takes `message` actions with `channel: onsite` (route them with `targets: {message.onsite:
  web_tracker}`) and keeps them for the visitor until the snippet (`/v1/crmrules.js`) shows them, once.

Trust: write keys are public, so anyone can post anything here. The core lets events of the `web` source alone
only tag, score and show on-site messages; this plugin adds what it can (see README.md, "Trust").
"""

from __future__ import annotations

import time
from typing import Any, Callable

from crmrules.api import ActionNotSupported, PushFailed, RetryLater, hookimpl, runtime

from .onsite import open_onsite
from .settings import TrackerSettings, onsite_path, parse, remembered_store, split

NAME = "web_tracker"


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, TrackerSettings)


@hookimpl
def register_sources(register: Callable[..., None]) -> None:
    from .views import make_blueprint

    register(NAME, make_blueprint())


def _deployment(settings: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    """Our options and the main store's path, from what the dispatcher hands us or the receiver's runtime."""

    options, store = split(settings)
    if store is None:
        try:
            whole = runtime().settings
        except (RuntimeError, KeyError):  # no receiver app context: a dispatcher running on its own
            whole = None
        if whole:
            store = whole.get("store")
            if not options:
                options = dict((whole.get("plugins") or {}).get(NAME) or {})
    return options, store or remembered_store()


@hookimpl
def push_action(target: str, item: Any, settings: dict[str, Any]) -> Any:
    if target != NAME:
        return None
    action = item.action
    if action.type != "message" or getattr(action, "channel", None) != "onsite":
        what = action.type if action.type != "message" else f"message on channel {action.channel!r}"
        raise ActionNotSupported(f"the web tracker only shows messages with channel: onsite, not {what}")
    if item.shadow:
        return "shadow: not shown"
    raw, main_store = _deployment(settings)
    try:
        options = parse(raw)
    except ValueError as exc:
        raise PushFailed(str(exc)) from None
    if not any(item.identities.get(kind) for kind in options.onsite_lookup):
        raise PushFailed(f"cannot show an on-site message: the lead has no {' or '.join(options.onsite_lookup)} "
                         "(a visitor is found by it; see plugins.web_tracker.onsite_lookup)")
    path = onsite_path(options, main_store)
    if path is None:
        # The dispatcher gave only our options and runs outside the receiver: the main store's folder is unknown.
        raise RetryLater("the web tracker does not know where the main store is; set plugins.web_tracker."
                         "onsite_store to an absolute path (or run the dispatcher beside the receiver)", 30)
    store = open_onsite(path)
    try:
        token, stored = store.add(
            key=item.idempotency_key, ids=dict(item.identities), entity_id=item.entity_id, rule=item.rule,
            subject=action.subject, body=action.body, locale=action.locale, ttl=options.onsite_ttl,
            once_per_rule=options.onsite_once_per_rule, now=time.time())
    except ValueError as exc:
        raise PushFailed(f"cannot show an on-site message: {exc}") from None
    return f"onsite {token}" if stored else f"onsite {token} (kept before; not shown twice)"
