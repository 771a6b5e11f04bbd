"""The core's own plugin, registered before any other (as llm's DEFAULT_PLUGINS): the sources it makes itself.

Their trust is declared here like any plugin's, so that trust is always something a source declared:
- `import`: events from files an admin replays with `crmrules run` or `crmrules demo` (the default
  `Event.source`); whoever can hand the sidecar a file already holds the deployment.
- `test`: the events of pack tests (`crmrules test`), written by the pack's author.
"""

from __future__ import annotations

from .api import RegisterSource, hookimpl

NAME = "crmrules"


@hookimpl
def register_sources(register: RegisterSource) -> None:
    register("import", trusted=True)
    register("test", trusted=True)
