"""House rules checked on the source: no import cycles, no module over 400 lines.

The import graph is read with :mod:`ast`, not by importing gsse, so a cycle
shows even where it happens not to break at run time today. Imports under
``if TYPE_CHECKING:`` never run and are left out; imports inside functions
run later but still tie two modules together, so they count too (a lazy
import may keep an optional package or patching order in check, never hide
a cycle).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gsse"
MAX_LINES = 400

#: Modules still over MAX_LINES, each with the work that splits it. The test
#: fails once a listed module is short enough (strict xfail): then drop it here.
Edge = tuple[str, str]


def module_name(path: Path) -> str:
    """``gsse/brokers/base.py`` -> ``gsse.brokers.base``; a package is its folder."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The gsse modules an import statement in ``module`` loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            package = module.split(".")
            if MODULES[module].name != "__init__.py":
                package.pop()
            base = package[: len(package) - node.level + 1]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        # ``from . import x`` loads the submodule x; ``from .m import f``, m.
        names = [
            f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in MODULES else origin
            for alias in node.names
        ]
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            yield name


def _imports(
    module: str, nodes: Iterable[ast.AST], in_function: bool
) -> Iterator[tuple[str, bool]]:
    for node in nodes:
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from _imports(module, node.orelse, in_function)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in _targets(module, node):
                yield target, in_function
        else:
            nested = in_function or isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            yield from _imports(module, ast.iter_child_nodes(node), nested)


def import_graph(with_functions: bool) -> dict[str, set[str]]:
    """Module -> the gsse modules it imports (outside ``TYPE_CHECKING``)."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for target, in_function in _imports(name, tree.body, False):
            if with_functions or not in_function:
                graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path ``[a, b, ..., a]``, or ``[]`` if there is none."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str]:
        path.append(node)
        on_path.add(node)
        for target in sorted(graph[node]):
            if target in on_path:
                return path[path.index(target) :] + [target]
            if target not in done:
                found = visit(target)
                if found:
                    return found
        on_path.discard(path.pop())
        done.add(node)
        return []

    for start in sorted(graph):
        if start not in done:
            found = visit(start)
            if found:
                return found
    return []


def test_the_graph_sees_relative_and_lazy_imports() -> None:
    """The graph holds the imports the cycle tests rely on, minus TYPE_CHECKING ones."""
    eager = import_graph(with_functions=False)
    everything = import_graph(with_functions=True)
    assert "gsse.cli_parser" in eager["gsse.cli"]  # from .cli_parser import ...
    assert "gsse.transport.base" in eager["gsse.transport"]  # package re-exports
    assert "gsse.streams" in eager["gsse.brokers.fanout"]  # from ..streams
    assert "gsse.listen" not in eager["gsse.cli_run"]  # imported after patching
    assert "gsse.listen" in everything["gsse.cli_run"]
    assert "gsse.registry" not in everything["gsse.limits"]  # TYPE_CHECKING only


def test_find_cycle_reports_the_path() -> None:
    """find_cycle names each module of a cycle in order, and nothing when acyclic."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_at_module_level() -> None:
    """No gsse module imports, at import time, one that imports it back."""
    cycle = find_cycle(import_graph(with_functions=False))
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_through_function_level_imports() -> None:
    """A lazy import inside a function does not close a cycle either."""
    cycle = find_cycle(import_graph(with_functions=True))
    assert not cycle, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_under_400_lines(name: str) -> None:
    """Every module under gsse/ stays under 400 lines (split along responsibilities)."""
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines < MAX_LINES, f"{MODULES[name]} has {lines} lines"
