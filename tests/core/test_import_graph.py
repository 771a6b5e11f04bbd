"""No import cycles inside the `crmrules` package (core/).

Why a test: a cycle makes import order matter (a module half-initialised when its partner asks for a name),
and it says two boxes of the data path lean on each other, so neither can be read, tested or replaced alone.
Lazy imports inside functions hide a cycle from the interpreter but not from the design, so they count.

How the graph is built: every module under core/ is parsed with `ast` (nothing is imported) and every import
of `crmrules.*` becomes an edge, absolute or relative, at module level or inside a function or class.
`from pkg import x` points at the submodule `pkg.x` when there is one, else at `pkg` (its `__init__`).
Importing `a.b.c` is an edge to `a.b.c` only: Python also runs `a/__init__` and `a/b/__init__` first, but
counting that would turn every package that re-exports its children into a cycle with each child. A child
that imports its own package's `__init__` back (`from . import name` of a non-module, `from crmrules.pkg
import Name`) is an edge like any other, and closes the cycle with the re-export.

Left out: imports under `if TYPE_CHECKING:` (they never run; they exist for annotations), and
`importlib.import_module` with a computed name (plugin discovery; not a static dependency).
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import crmrules

PACKAGE = "crmrules"
ROOT = Path(crmrules.__file__).resolve().parent


def modules_of(root: Path, package: str = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Dotted name → (file, is a package) for every importable module under `root`."""

    found: dict[str, tuple[Path, bool]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if not all((root / Path(*rel.parts[:i]) / "__init__.py").is_file() for i in range(1, len(rel.parts))):
            continue  # a folder without __init__.py: not part of the package
        parts = [package, *rel.with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _known(name: str, modules: set[str]) -> str:
    """The longest prefix of `name` that is a module (an import of a missing name still depends on its parent)."""

    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(name: str, is_package: bool, source: str, modules: set[str], package: str = PACKAGE) -> set[str]:
    """The modules of `package` that module `name` imports anywhere except under `if TYPE_CHECKING:`."""

    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == package or alias.name.startswith(package + "."):
                    found.add(_known(alias.name, modules))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = name.split(".") if is_package else name.split(".")[:-1]
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base == package or base.startswith(package + "."):
                for alias in node.names:
                    child = f"{base}.{alias.name}"
                    found.add(child if child in modules else _known(base, modules))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source, filename=name))
    found.discard(name)
    return found


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    modules = modules_of(root, package)
    names = set(modules)
    return {name: imports_of(name, is_package, path.read_text(encoding="utf-8"), names, package)
            for name, (path, is_package) in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one module, each sorted, in a stable order."""

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(components)


def shortest_cycle(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """start → … → start along the fewest edges, staying inside one component."""

    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph.get(node, ())):
            if target not in within:
                continue
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if target not in came_from:
                came_from[target] = node
                queue.append(target)
    raise AssertionError(f"{start} is on no cycle within {sorted(within)}")


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """Shortest cycles that together pass through every module of every component, one line each."""

    lines = []
    for component in strongly_connected(graph):
        covered: set[str] = set()
        for member in component:
            if member not in covered:
                cycle = shortest_cycle(graph, member, set(component))
                covered.update(cycle)
                lines.append(" → ".join(cycle))
    return lines


# ------------------------------------------------------------------------------------------------- the tests


def test_core_has_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles in core/:\n  " + "\n  ".join(found)


def test_the_graph_sees_the_imports_it_must_see() -> None:
    """Guards the test above against an empty graph: known edges of each kind are present."""

    graph = import_graph()
    assert len(graph) > 30
    assert "crmrules.decide.evaluator" in graph["crmrules.pipeline"]  # relative, module level
    assert "crmrules.language.ast" in graph["crmrules.pipeline"]  # `from .language import ast` is the submodule
    assert "crmrules.store" in graph["crmrules.cli"]  # inside a function
    assert "crmrules.store.sqlite" in graph["crmrules.store"]  # a package's own child


def test_relative_lazy_and_type_checking_imports() -> None:
    modules = {"crmrules", "crmrules.a", "crmrules.a.b", "crmrules.a.c", "crmrules.d"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "import crmrules.d\n"
        "from . import c, Name\n"
        "if TYPE_CHECKING:\n"
        "    from crmrules import x\n"
        "else:\n"
        "    import os\n"
        "def later():\n"
        "    from .. import d\n"
        "    from ..a.b import thing\n")
    assert imports_of("crmrules.a.b", False, source, modules) == {"crmrules.d", "crmrules.a.c", "crmrules.a"}
    # in an __init__, `.` is the package itself
    assert imports_of("crmrules.a", True, "from . import b\nfrom .c import f\n", modules) == {
        "crmrules.a.b", "crmrules.a.c"}


def test_cycles_are_spelled_out() -> None:
    graph = {"crmrules.cli": {"crmrules.demo", "crmrules.config"}, "crmrules.demo": {"crmrules.cli"},
             "crmrules.config": set(), "crmrules.a": {"crmrules.b"}, "crmrules.b": {"crmrules.c"},
             "crmrules.c": {"crmrules.a", "crmrules.b"}}
    assert cycles(graph) == [
        "crmrules.a → crmrules.b → crmrules.c → crmrules.a", "crmrules.cli → crmrules.demo → crmrules.cli"]
    # two cycles through one module: both are named
    assert cycles({"crmrules.cli": {"crmrules.demo", "crmrules.server"}, "crmrules.demo": {"crmrules.cli"},
                   "crmrules.server": {"crmrules.cli"}}) == [
        "crmrules.cli → crmrules.demo → crmrules.cli", "crmrules.server → crmrules.cli → crmrules.server"]
    # a package re-exporting its children is no cycle; a child importing the package back is
    assert cycles({"crmrules.p": {"crmrules.p.x"}, "crmrules.p.x": set()}) == []
    assert cycles({"crmrules.p": {"crmrules.p.x"}, "crmrules.p.x": {"crmrules.p"}}) == [
        "crmrules.p → crmrules.p.x → crmrules.p"]
