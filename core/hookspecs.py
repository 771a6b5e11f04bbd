"""The hooks a crmrules plugin can implement, one documented function each. docs/plugins.md is the guide.

Every hook registers things by name through a `register` callback, as llm's `register_models(register)`: the core
knows by name what each plugin provides (sources, targets, actions, conditions, settings), which plugin provides
it, and refuses two plugins claiming one name. Implement them in a module with `@crmrules.api.hookimpl` and point
the `crmrules` entry-point group at it:

    [project.entry-points.crmrules]
    chat = "crmrules_chat"

A function marked `@hookimpl` whose name is not one of these hooks is refused when plugins load (`crmrules
plugins` lists it, `crmrules serve` does not start), so a misspelt hook never goes silently unused.
"""

from __future__ import annotations

import click
import pluggy

from .api import RegisterAction, RegisterCondition, RegisterModel, RegisterSource, RegisterTarget, hookimpl

hookspec = pluggy.HookspecMarker("crmrules")

__all__ = ["hookimpl", "hookspec", "register_actions", "register_commands", "register_conditions",
           "register_settings", "register_sources", "register_targets"]


@hookspec
def register_sources(register: RegisterSource) -> None:
    """Declare where events come from: `register(name, *, blueprint=None, pull=None, trusted=False, openapi=None)`.

    `name` is the `Event.source` of the events this source makes (the inbox takes each (source, id) once, and
    `crmrules.api.ingest` refuses a source nobody registered).
    - `blueprint`: a Flask `Blueprint` mounted on the receiver. Its views verify the request (signature, key;
      `raise crmrules.api.Rejected(status, reason)` for one that must not be stored), turn it into `Event`s and
      hand them to `crmrules.api.ingest(events)`, which writes them durably before the view answers.
      `crmrules.api.plugin_context(<your plugin>)` gives a view your options.
    - `pull(since, context) -> crmrules.api.PullResult(events, cursor, more)`: records and events changed since
      `since` (None the first time), for backfill and polling (`poll_every` in your section of crmrules.yaml).
      `cursor` is opaque to the core and handed back as `since` next time, once the events are in the inbox.
    - `trusted`: whether this source's events may vouch for ids, merge records and act on the CRM. Say True only
      when each request is authenticated (a signature, a secret); anything anyone may post to is untrusted, and
      so is a source that declares nothing.
    - `openapi`: the OpenAPI 3.1 `paths` of your routes (or `{"paths": ..., "components": ...}`) for the
      receiver's /openapi.json; routes you leave out are listed from their view's docstring.
    """


@hookspec
def register_targets(register: RegisterTarget) -> None:
    """Declare a system actions are pushed to: `register(name, push)`; `targets:` in crmrules.yaml routes to it.

    `push(item, context) -> str` applies one `crmrules.api.OutboxItem` and returns a short result (the created
    record's id, say). `item.decided_at` is the event time of the decision; `item.record` holds the record's
    tags and score after it, so a push can write absolute values (naturally idempotent) rather than increments.
    Raise `crmrules.api.RetryLater(reason, retry_after=None)` for throttling and passing faults,
    `crmrules.api.PushFailed(reason)` for faults retrying cannot fix, and `crmrules.api.ActionNotSupported` for an
    action you cannot apply. A push may run again after a crash: use `item.idempotency_key` so it applies once.
    """


@hookspec
def register_actions(register: RegisterAction) -> None:
    """Add action types rules can use in `then:`.

    Call `register(name, model)` where `model` is a pydantic model of the action's fields; the rule loader
    validates `then: - <name>: {...}` against it and reports errors with file and line.
    """


@hookspec
def register_conditions(register: RegisterCondition) -> None:
    """Add property tests rules can use: `register(name, function)`.

    `function(value, argument) -> bool` is called with the property's value and what the rule wrote, e.g.
    `lead: {email: {business_email: true}}` calls `business_email(lead.email, True)`.
    """


@hookspec
def register_settings(register: RegisterModel) -> None:
    """Declare your plugin's name and its options: `register(name, model)`, for `plugins: {<name>: {...}}`.

    `model` is a pydantic model of that section; `crmrules check` and `crmrules serve` validate the section
    against it before anything runs, so a typo surfaces at once and not at the first webhook, and your push, pull
    and views receive it validated as `context.options`. The core itself reads `poll_every` from the section
    (declare it if you have a `pull`). Secrets are not options: they come from the environment.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the `crmrules` command line (`cli` is the click group)."""
