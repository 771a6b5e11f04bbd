"""The core's own plugin, registered before any other (as llm's DEFAULT_PLUGINS): its action types and the
sources it makes itself.

The built-in action types (score, tag, untag, set, task, message, webhook; `crmrules.actions.builtin`) reach
the table through the same `register_actions` hook as a plugin's, so a plugin cannot take their names.

Their trust is declared here like any plugin's, so that trust is always something a source declared:
- `import`: events from files an admin replays with `crmrules run` or `crmrules demo` (the default
  `Event.source`); whoever can hand the sidecar a file already holds the deployment.
- `test`: the events of pack tests (`crmrules test`), written by the pack's author.
"""

from __future__ import annotations

from .actions import BUILTIN_ACTIONS
from .api import RegisterAction, RegisterSource, hookimpl

NAME = "crmrules"


@hookimpl
def register_sources(register: RegisterSource) -> None:
    register("import", trusted=True)
    register("test", trusted=True)


@hookimpl
def register_actions(register: RegisterAction) -> None:
    for action_type in BUILTIN_ACTIONS:
        register(action_type.name, action_type)
