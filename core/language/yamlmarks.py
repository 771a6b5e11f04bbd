"""YAML that remembers where each value came from, so errors can point at file:line:column.

Only yaml.SafeLoader is used: rules are data and can never construct Python objects.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


MAX_BYTES = 5_000_000
"""Largest YAML file read (pack, pack test, settings): bigger is refused before it is parsed."""

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists, aliases counted where they are used."""

MAX_NODES = 500_000
"""Values in one document once every alias is expanded (a YAML alias bomb expands to billions)."""


class MarkedDict(dict[Any, Any]):
    """A mapping with the position of itself, of each key and of each value."""

    mark: tuple[int, int] = (1, 1)
    key_marks: dict[Any, tuple[int, int]]
    value_marks: dict[Any, tuple[int, int]]
    text_marks: dict[Any, tuple[int, int]]  # a `|` block's first line of text: where template line 1 is


class MarkedList(list[Any]):
    mark: tuple[int, int] = (1, 1)
    item_marks: list[tuple[int, int]]
    text_marks: dict[Any, tuple[int, int]]


class YamlProblem(Exception):
    """A YAML document refused with the place it went wrong (file:line:column is added by the caller)."""

    def __init__(self, message: str, line: int, column: int):
        self.line, self.column = line, column
        super().__init__(message)


class DuplicateKey(YamlProblem):
    def __init__(self, key: Any, line: int, column: int):
        self.key = key
        super().__init__(f"key {key!r} appears twice in the same mapping", line, column)


class TooLarge(YamlProblem):
    """Over one of the limits above: refused with a sentence, never a MemoryError or RecursionError."""


def _pos(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Loader(yaml.SafeLoader):
    """SafeLoader that measures while it composes: depth, and the size of every alias where it is used."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._measured: dict[int, tuple[int, int]] = {}  # id(node) → (expanded size, height)
        self._lines: list[str] | None = None

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None:
                at = (event.start_mark.line + 1, event.start_mark.column + 1)
                if node.end_mark is None:  # still being composed: the alias is inside what it names
                    raise TooLarge(f"alias *{event.anchor} is used inside the value it names (a loop)", *at)
                size, height = self._measure(node)
                self._nodes += size
                if self._nodes > MAX_NODES:
                    raise TooLarge(f"alias *{event.anchor} expands the document past {MAX_NODES:,} values "
                                   "(an alias bomb?); write the values out, or share less", *at)
                if self._depth + height > MAX_DEPTH:
                    raise TooLarge(f"alias *{event.anchor} nests values deeper than {MAX_DEPTH} levels", *at)
            return super().compose_node(parent, index)
        self._depth += 1
        self._nodes += 1
        if self._depth > MAX_DEPTH or self._nodes > MAX_NODES:
            mark = self.peek_event().start_mark
            what = (f"nested deeper than {MAX_DEPTH} levels" if self._depth > MAX_DEPTH
                    else f"more than {MAX_NODES:,} values in one document")
            raise TooLarge(what, mark.line + 1, mark.column + 1)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _measure(self, node: yaml.Node) -> tuple[int, int]:
        known = self._measured.get(id(node))
        if known is not None:
            return known
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        size, height = 1, 1
        for child in children:  # depth is bounded by MAX_DEPTH, so recursion is too
            s, h = self._measure(child)
            size, height = size + s, max(height, h + 1)
        self._measured[id(node)] = (size, height)
        return size, height

    def text_start(self, node: yaml.Node) -> tuple[int, int] | None:
        """For a `|` block scalar, where its text begins (its first line's indentation)."""

        if not isinstance(node, yaml.ScalarNode) or node.style != "|":
            return None
        if self._lines is None:
            self._lines = str(getattr(self, "buffer", "")).split("\n")
        line = node.start_mark.line + 1  # 0-based: the line after the `|` header
        while line < len(self._lines) and not self._lines[line].strip():
            line += 1
        if line >= len(self._lines):
            return None
        text = self._lines[line]
        return (line + 1, len(text) - len(text.lstrip(" ")) + 1)


def _mapping(loader: _Loader, node: yaml.MappingNode) -> MarkedDict:
    loader.flatten_mapping(node)
    out = MarkedDict()
    out.mark = _pos(node)
    out.key_marks, out.value_marks, out.text_marks = {}, {}, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            line, col = _pos(key_node)
            raise DuplicateKey(key, line, col)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_marks[key] = _pos(key_node)
        out.value_marks[key] = _pos(value_node)
        start = loader.text_start(value_node)
        if start:
            out.text_marks[key] = start
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> MarkedList:
    out = MarkedList(loader.construct_object(child, deep=True) for child in node.value)
    out.mark = _pos(node)
    out.item_marks = [_pos(child) for child in node.value]
    out.text_marks = {i: m for i, child in enumerate(node.value) if (m := loader.text_start(child))}
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)
# YAML 1.1 guesses surprise admins: `no:` (our absence condition) and `NO` (Norway) would become False, and
# dates would lose their time zone. Only true/false are booleans; dates stay strings the language parses.
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def load_marked(text: str) -> Any:
    """Parse YAML text; raises yaml.YAMLError (with problem_mark) or a YamlProblem (DuplicateKey, TooLarge)."""

    if len(text) > MAX_BYTES:
        raise TooLarge(f"the file is {len(text) / 1e6:.1f} MB; YAML files are read up to {MAX_BYTES / 1e6:g} MB", 1, 1)
    loader = _Loader(text)  # derives from SafeLoader
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def mark_of(container: Any, key: Any) -> tuple[int, int] | None:
    """Where the value at `key` of a marked container starts."""

    if isinstance(container, MarkedDict):
        return container.value_marks.get(key)
    if isinstance(container, MarkedList) and isinstance(key, int) and 0 <= key < len(container.item_marks):
        return container.item_marks[key]
    return None


def own_mark(value: Any) -> tuple[int, int] | None:
    return getattr(value, "mark", None)
