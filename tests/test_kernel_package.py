"""The kernels package as a whole: no import cycles, one numba decorator, no ``assert``."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERNELS = ROOT / "pipeline" / "kernels"
PACKAGE = "pipeline.kernels"


def _module_name(path: pathlib.Path) -> str:
    return PACKAGE if path.name == "__init__.py" else f"{PACKAGE}.{path.stem}"


def _imported_modules(tree: ast.AST, modules: set[str]) -> set[str]:
    """Modules of ``modules`` that ``tree`` imports anywhere (also under TYPE_CHECKING or in
    functions): ``from pipeline.kernels import x`` counts as importing ``x`` if it is a module,
    otherwise as importing the package's ``__init__``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in modules:
                    found.add(sub)
                elif node.module in modules:
                    found.add(node.module)
    return found


def import_graph(folder: pathlib.Path = KERNELS) -> dict[str, set[str]]:
    """Which module of the package imports which (an edge per import statement)."""
    paths = sorted(folder.glob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {
        _module_name(p): _imported_modules(ast.parse(p.read_text(), str(p)), modules) for p in paths
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_kernel_modules_import_each_other_without_cycles() -> None:
    graph = import_graph()
    assert f"{PACKAGE}.params" in graph[f"{PACKAGE}.registry"]  # the walk sees real imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_params_is_a_leaf_module() -> None:
    assert import_graph()[f"{PACKAGE}.params"] == set()


def test_the_cycle_finder_finds_a_cycle_through_type_checking_imports(tmp_path) -> None:
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "a.py").write_text("from pipeline.kernels.b import x\n")
    (tmp_path / "b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from pipeline.kernels.a import y\n"
    )
    cycle = find_cycle(import_graph(tmp_path))
    assert cycle == [f"{PACKAGE}.a", f"{PACKAGE}.b", f"{PACKAGE}.a"]


@pytest.mark.parametrize(
    "source", ["from pipeline.kernels import a\n", "import pipeline.kernels.a\n"]
)
def test_the_cycle_finder_resolves_both_import_forms(tmp_path, source) -> None:
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "a.py").write_text("")
    (tmp_path / "b.py").write_text(source)
    assert import_graph(tmp_path)[f"{PACKAGE}.b"] == {f"{PACKAGE}.a"}
