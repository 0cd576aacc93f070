"""The kernels package as a whole: no import cycles, one numba decorator, no ``assert``."""

from __future__ import annotations

import ast
import importlib
import pathlib
import warnings
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import xarray as xr
from numba.core.dispatcher import Dispatcher

import pipeline
from pipeline.kernels import nogil_kernel, registry

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


def _kernel_modules() -> list[ModuleType]:
    return [importlib.import_module(_module_name(p)) for p in sorted(KERNELS.glob("*.py"))]


def _dispatchers() -> dict[str, Any]:
    """Every numba function defined in the package, by qualified name."""
    found = {}
    for module in _kernel_modules():
        for name, obj in vars(module).items():
            if isinstance(obj, Dispatcher) and obj.py_func.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = obj
    return found


def test_every_compiled_loop_releases_the_gil_without_an_on_disk_cache() -> None:
    dispatchers = _dispatchers()
    assert {
        "pipeline.kernels.terrain._slope_core",
        "pipeline.kernels.focal._focal_mean_core",
    } < set(dispatchers)
    assert len(dispatchers) >= 14
    for name, func in dispatchers.items():
        assert registry.holds_gil(func) is False, name
        assert func.targetoptions["nogil"] is True, name
        assert not func.targetoptions.get("parallel"), name
        assert type(func._cache).__name__ == "NullCache", name  # cache=False


def test_band_math_loops_keep_numpys_error_model() -> None:
    for name, func in _dispatchers().items():
        expected = "numpy" if name.startswith("pipeline.kernels.band_math.") else "python"
        assert func.targetoptions["error_model"] == expected, name


def _numba_decorations(path: pathlib.Path) -> list[str]:
    """``numba.njit``/``jit``/``vectorize``... uses in a module, as ``file:line``."""
    names = {"njit", "jit", "vectorize", "guvectorize", "stencil", "cfunc"}
    hits = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        name = getattr(node, "attr", None) or getattr(node, "id", None)
        from_numba = isinstance(node, ast.ImportFrom) and node.module == "numba"
        if name in names or from_numba:
            hits.append(f"{path.name}:{node.lineno}")
    return hits


def test_only_the_shared_decorator_calls_numba() -> None:
    hits = [
        h
        for p in sorted(KERNELS.glob("*.py"))
        if p.name != "_numba.py"
        for h in _numba_decorations(p)
    ]
    assert hits == []
    assert _numba_decorations(KERNELS / "_numba.py")  # the walk does see numba.njit


def test_nogil_kernel_compiles_with_the_shared_options_and_chosen_error_model() -> None:
    def ratio(a, b):
        return a / b

    python_model = nogil_kernel(ratio)
    numpy_model = nogil_kernel(error_model="numpy")(ratio)
    for func in (python_model, numpy_model):
        assert func.targetoptions["nogil"] is True and registry.holds_gil(func) is False
    assert numpy_model(1.0, 0.0) == np.inf
    with pytest.raises(ZeroDivisionError):
        python_model(1.0, 0.0)


def test_a_user_kernel_compiled_with_nogil_kernel_runs_without_a_gil_warning() -> None:
    @nogil_kernel
    def plus_one(block):
        return block + 1

    da = xr.DataArray(np.zeros((1, 4, 5), dtype=np.float32), dims=("band", "y", "x"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = pipeline.apply_kernel(da, plus_one)
    np.testing.assert_array_equal(out.values, np.ones((1, 4, 5), dtype=np.float32))


@pytest.mark.parametrize(
    "path",
    [*sorted(KERNELS.glob("*.py")), ROOT / "pipeline" / "apply.py"],
    ids=lambda p: p.name,
)
def test_library_code_validates_without_assert(path) -> None:
    # `python -O` strips asserts: input checks raise KernelError & co. instead.
    tree = ast.parse(path.read_text(), str(path))
    lines = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]
    assert lines == [], f"{path.name}: assert on line(s) {lines}"
