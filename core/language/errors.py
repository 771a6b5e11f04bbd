"""Errors an admin reads: every mistake in a pack at once, each with file:line:column."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RuleError:
    file: str
    line: int  # 0: the place in the file is not known (the file is still named)
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        at = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{at}: {where}{self.message}"


@dataclass(eq=False)
class VarsOrigin:
    """Where a deployment wrote its variable overrides (crmrules.yaml `vars: {pack: {name: value}}`), so that a
    bad override is reported there, at its own line, and not at the pack line that uses it as if the pack
    were wrong."""

    file: str
    key_marks: dict[tuple[str, ...], tuple[int, int]] = field(default_factory=dict)  # (pack,) / (pack, name)
    value_marks: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    complete: bool = True  # the packs loaded are the whole deployment: a pack named under vars must be among them

    def error(self, path: tuple[str, ...], message: str, at_value: bool = False) -> RuleError:
        # value_marks is keyed by (pack, name): looking up another length of path finds nothing, as it should
        mark = (self.value_marks.get(path) if at_value else None) or self.key_marks.get(path) or (0, 0)  # type: ignore[arg-type]
        return RuleError(self.file, mark[0], mark[1], ".".join(("vars",) + path), message)


class PackError(Exception):
    """A pack that cannot be used, with all of its errors."""

    def __init__(self, errors: list[RuleError]):
        self.errors = sorted(errors, key=lambda e: (e.file, e.line, e.column))
        super().__init__("\n".join(str(e) for e in self.errors))
