"""Where the parser is while it walks one pack file, so every error lands at file:line:column — and an error in
a value a deployment's `vars:` override put there is reported in crmrules.yaml, where that value was written.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

from .errors import RuleError, VarsOrigin
from .yamlmarks import MarkedDict, mark_of, own_mark


class ParseContext:
    """Where we are while walking one file: turns (container, key) into file:line:col errors."""

    def __init__(self, file: str, errors: list[RuleError]):
        self.file = file
        self.errors = errors
        # deployment overrides: their names, where they were written, and the values they put into the pack
        self.pack = ""
        self.overridden: set[str] = set()
        self.origin: VarsOrigin | None = None
        self._from_override: dict[tuple[int, Any], tuple[str, str | None, tuple[int, int]]] = {}
        self._inside_override: dict[int, tuple[str, str | None, tuple[int, int]]] = {}
        self._keep: list[Any] = []  # the values whose ids are remembered above stay alive while we walk
        # templates seen while walking, checked at the end, when the pack's fields are known
        self.templates: list[tuple[Any, Any, str, str]] = []

    def note_override(self, parent: Any, key: Any, name: str, value: Any, text: str | None) -> None:
        """`parent[key]` now holds (or was built from, `text`) the deployment's override of `name`."""

        use = mark_of(parent, key) or own_mark(parent) or (1, 1)
        self._from_override[(id(parent), key)] = (name, text, use)
        self._keep += [parent, value]
        stack = [value]
        while stack:  # errors may point inside a list or mapping the override gave
            item = stack.pop()
            if isinstance(item, (dict, list)):
                self._inside_override[id(item)] = (name, text, use)
                stack += list(item.values()) if isinstance(item, dict) else list(item)

    def error(self, container: Any, key: Any, path: str, message: str, use_key: bool = False,
              at: tuple[int, int] | None = None) -> None:
        mark = at
        if mark is None and use_key and isinstance(container, MarkedDict):
            mark = container.key_marks.get(key)
        mark = mark or mark_of(container, key) or own_mark(container) or (1, 1)
        came = self._from_override.get((id(container), key)) or self._inside_override.get(id(container))
        if came is not None and self.origin is not None:
            # the pack is fine with its own value: the deployment's value is wrong, so say it there
            name, text, use = came
            used = f"used at {self.file}:{use[0]}:{use[1]}" + (f" in {text.strip()!r}" if text else "")
            self.errors.append(self.origin.error((self.pack, name), f"{message} ({used})", at_value=True))
            return
        self.errors.append(RuleError(self.file, mark[0], mark[1], path, message))

    def template_error(self, container: Any, key: Any, path: str, line: int, message: str) -> None:
        """A problem on `line` of the template at `container[key]`: at that line of a `|` block, else at the
        value (with the template's line named when it is not the first)."""

        start = getattr(container, "text_marks", {}).get(key)
        if start is not None:
            self.error(container, key, path, f"template error: {message}", at=(start[0] + line - 1, start[1]))
            return
        where = f" (line {line} of the template)" if line > 1 else ""
        self.error(container, key, path, f"template error: {message}{where}")

    def line(self, container: Any, key: Any) -> int:
        mark = mark_of(container, key) or own_mark(container) or (1, 1)
        return mark[0]


def join_path(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def report_unknown_keys(ctx: ParseContext, mapping: MarkedDict, allowed: Iterable[str], path: str) -> None:
    allowed = sorted(allowed)
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; allowed here: {', '.join(allowed)}"
            ctx.error(mapping, key, join_path(path, key), f"unknown field {key!r}{hint}", use_key=True)
