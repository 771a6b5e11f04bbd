"""The hooks a crmrules plugin can implement, one documented function each.

Implement them in a module with `@crmrules.hookimpl` and point the `crmrules` entry-point group at it:

    [project.entry-points.crmrules]
    chat = "crmrules_chat"

Hooks that collect things take a `register` callback; hooks where one plugin answers are `firstresult`.
Where a hook takes `settings`, it is the plugin's own section of crmrules.yaml (`plugins: {<name>: {...}}`);
the core reads `poll_every` (seconds) from that section and leaves every other key to the plugin.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("crmrules")
hookimpl = pluggy.HookimplMarker("crmrules")


@hookspec
def register_sources(register: Callable[..., None]) -> None:
    """Mount inbound webhook routes on the receiver.

    Call `register(name, blueprint)` with a Flask `Blueprint`. Views turn a request into `Event`s and hand them to
    `crmrules.api.ingest(events)`, which writes them durably before the view answers. Verify the request first
    (signature, key); raise `crmrules.api.Rejected(status, reason)` for a request that must not be stored.
    """


@hookspec(firstresult=True)
def pull(source: str, since: str | None, settings: dict[str, Any]) -> Any:
    """Fetch records and events changed since a cursor, for backfill and polling.

    Answer only for your own `source` name (return None otherwise) with a `crmrules.api.PullResult(events, cursor)`;
    `cursor` is opaque to the core and handed back as `since` next time.
    """


@hookspec
def register_actions(register: Callable[..., None]) -> None:
    """Add action types rules can use in `then:`.

    Call `register(name, model)` where `model` is a pydantic model of the action's fields; the rule loader
    validates `then: - <name>: {...}` against it and reports errors with file and line.
    """


@hookspec(firstresult=True)
def push_action(target: str, item: Any, settings: dict[str, Any]) -> Any:
    """Apply one outbox item (`crmrules.models.OutboxItem`) to `target`, the system the deployment routes it to.

    `item.decided_at` is the event time of the decision; `item.record` holds the record's tags and score after
    it, so a push can write absolute values (naturally idempotent) rather than increments.
    Return None when `target` is not yours. Return a short result string (the created record's id, say) once
    applied. Raise `crmrules.api.RetryLater(reason, retry_after=None)` for throttling and passing faults,
    `crmrules.api.PushFailed(reason)` for faults retrying cannot fix, and `crmrules.api.ActionNotSupported` for
    an action you cannot apply. Use `item.idempotency_key` so that a retry after a crash applies it once.
    """


@hookspec
def register_conditions(register: Callable[..., None]) -> None:
    """Add property tests rules can use: `register(name, function)`.

    `function(value, argument) -> bool` is called with the property's value and what the rule wrote, e.g.
    `lead: {email: {business_email: true}}` calls `business_email(lead.email, True)`.
    """


@hookspec
def register_settings(register: Callable[..., None]) -> None:
    """Declare the options of your section of crmrules.yaml: `register(name, model)`.

    `model` is a pydantic model of `plugins: {<name>: {...}}`; `crmrules check` and `crmrules serve` validate the
    section against it before anything runs, so a typo surfaces at once and not at the first webhook. Secrets are
    not options: they come from the environment, which `check` may not have.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add subcommands to the `crmrules` command line (`cli` is a click.Group)."""
