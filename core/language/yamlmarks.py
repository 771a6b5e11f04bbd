"""YAML that remembers where each value came from, so errors can point at file:line:column.

Only yaml.SafeLoader is used: rules are data and can never construct Python objects.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class MarkedDict(dict[Any, Any]):
    """A mapping with the position of itself, of each key and of each value."""

    mark: tuple[int, int] = (1, 1)
    key_marks: dict[Any, tuple[int, int]]
    value_marks: dict[Any, tuple[int, int]]


class MarkedList(list[Any]):
    mark: tuple[int, int] = (1, 1)
    item_marks: list[tuple[int, int]]


class DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, column: int):
        self.key, self.line, self.column = key, line, column
        super().__init__(f"key {key!r} appears twice in the same mapping")


def _pos(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> MarkedDict:
    loader.flatten_mapping(node)
    out = MarkedDict()
    out.mark = _pos(node)
    out.key_marks, out.value_marks = {}, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            line, col = _pos(key_node)
            raise DuplicateKey(key, line, col)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_marks[key] = _pos(key_node)
        out.value_marks[key] = _pos(value_node)
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> MarkedList:
    out = MarkedList(loader.construct_object(child, deep=True) for child in node.value)
    out.mark = _pos(node)
    out.item_marks = [_pos(child) for child in node.value]
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
    """Parse YAML text; raises yaml.YAMLError (with problem_mark) or DuplicateKey."""

    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader


def mark_of(container: Any, key: Any) -> tuple[int, int] | None:
    """Where the value at `key` of a marked container starts."""

    if isinstance(container, MarkedDict):
        return container.value_marks.get(key)
    if isinstance(container, MarkedList) and isinstance(key, int) and 0 <= key < len(container.item_marks):
        return container.item_marks[key]
    return None


def own_mark(value: Any) -> tuple[int, int] | None:
    return getattr(value, "mark", None)
