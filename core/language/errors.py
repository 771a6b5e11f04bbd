"""Errors an admin reads: every mistake in a pack at once, each with file:line:column."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleError:
    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class PackError(Exception):
    """A pack that cannot be used, with all of its errors."""

    def __init__(self, errors: list[RuleError]):
        self.errors = sorted(errors, key=lambda e: (e.file, e.line, e.column))
        super().__init__("\n".join(str(e) for e in self.errors))
