"""User kernels: decorator, package.module:function, entry points, GIL warnings, parameters."""

from __future__ import annotations

import sys
import textwrap
import warnings

import numba
import numpy as np
import pytest

import pipeline
from pipeline.kernels import parse_param_strings, registry
from pipeline.kernels.testing import georeferenced, synthetic_dem

USER_MODULE = '''
import numba
import numpy as np

from pipeline.kernels import KernelSpec


@numba.njit(nogil=True, cache=False)
def add_nogil(block, amount=1.0):
    return block + amount


@numba.njit(cache=False)
def add_gil(block, amount=1.0):
    return block + amount


def add_python(block, amount=1.0):
    """Add amount to every pixel."""
    return block + amount


def broken(block):
    return block


SPEC = KernelSpec(
    name="whatever", func=add_python, description="a spec", params={"amount": 2.0},
    releases_gil=True,
)
'''


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch):
    """Each test sees the built-ins only, and leaves them that way."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """An importable module ``userkernels`` and an installed ``userkernels`` distribution."""
    (tmp_path / "userkernels.py").write_text(USER_MODULE)
    dist = tmp_path / "userkernels-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: userkernels\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [pipeline.kernels]
            plus = userkernels:add_nogil
            plus-spec = userkernels:SPEC
            missing-module = userkernels_nope:thing
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "userkernels", raising=False)
    yield "userkernels"
    sys.modules.pop("userkernels", None)


def _da():
    return georeferenced(synthetic_dem(6, 7, seed=1))


def test_decorator_registers_a_nogil_numba_kernel_without_warning() -> None:
    @pipeline.register_kernel(name="times", output_dtype="float32")
    @numba.njit(nogil=True, cache=False)
    def times(block, factor=2.0):
        return block * factor

    assert pipeline.list_kernels()  # still works with the new kernel
    spec = registry.get_kernel("times")
    assert spec.params == {"factor": 2.0} and spec.releases_gil is True
    da = _da()
    with warnings.catch_warnings():
        warnings.simplefilter("error", pipeline.PipelineWarning)
        out = pipeline.apply_kernel(da, "times", factor=3.0)
    assert out.dtype == np.float32 and out.data.name.startswith("pipeline-times-")
    np.testing.assert_allclose(out.values, da.values * 3.0, rtol=1e-6)


def test_register_kernel_as_a_call_returns_the_function_or_spec() -> None:
    def halve(block):
        return block / 2

    assert pipeline.register_kernel(halve) is halve
    assert registry.get_kernel("halve").func is halve
    spec = pipeline.KernelSpec("n", halve, "d", 0, False, lambda dt: dt, {})  # positional fields
    assert pipeline.register_kernel(spec) is spec


@pytest.mark.parametrize(
    ("func_name", "what"),
    [("add_python", "a Python function"), ("add_gil", "compiled without nogil=True")],
)
def test_kernels_holding_the_gil_work_with_a_warning(user_package, func_name, what) -> None:
    da = _da()
    with pytest.warns(pipeline.PipelineWarning, match="holds the GIL") as record:
        out = pipeline.apply_kernel(da, f"{user_package}:{func_name}", amount=0.5)
    message = str(record[0].message)
    assert what in message and "--processes" in message and "nogil=True" in message
    np.testing.assert_allclose(out.values, da.values + 0.5)
    assert out.data.name.startswith("pipeline-userkernels-")


def test_a_bare_function_can_be_applied_directly() -> None:
    def negate(block):
        return -block

    with pytest.warns(pipeline.PipelineWarning, match="'negate' holds the GIL"):
        out = pipeline.apply_kernel(_da(), negate)
    np.testing.assert_array_equal(out.values, -_da().values)


def test_module_function_reference_with_nogil_does_not_warn(user_package) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", pipeline.PipelineWarning)
        out = pipeline.apply_kernel(_da(), f"{user_package}:add_nogil")
    np.testing.assert_allclose(out.values, _da().values + 1.0)


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("userkernels_nope:f", "cannot import 'userkernels_nope'"),
        ("userkernels:nothing", "has no 'nothing'"),
        ("userkernels:", "must look like package.module:function"),
        ("user kernels:f", "must look like package.module:function"),
        ("userkernels:SPEC.name", "is neither a function nor a KernelSpec"),
    ],
)
def test_bad_references_are_one_line_errors(user_package, ref, fragment) -> None:
    with pytest.raises(pipeline.KernelError) as info:
        registry.get_kernel(ref)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_entry_points_load_lazily_on_lookup(user_package) -> None:
    registry.get_kernel("slope")
    assert user_package not in sys.modules  # built-in look-ups never import plugins
    spec = registry.get_kernel("plus")
    assert user_package in sys.modules and spec.name == "plus"
    assert registry.get_kernel("plus-spec").params == {"amount": 2.0}
    out = pipeline.apply_kernel(_da(), "plus", amount=2.0)
    np.testing.assert_allclose(out.values, _da().values + 2.0)


def test_listing_includes_entry_points_and_skips_broken_ones(user_package) -> None:
    with pytest.warns(pipeline.PipelineWarning, match="'missing-module'.*failed to load"):
        names = [s.name for s in pipeline.list_kernels()]
    assert {"plus", "plus-spec", "slope", "reverse-bands"} <= set(names)
    assert "missing-module" not in names
    with pytest.raises(pipeline.KernelError, match="failed to load"):
        registry.get_kernel("missing-module")


def test_parameters_from_the_command_line_are_typed() -> None:
    parse = parse_param_strings
    rescale = registry.get_kernel("rescale")
    got = parse(rescale, ["in_min=0", "in_max=1e3", "dtype=uint8", "clip=no", "out_max=2"])
    assert got == {"in_min": 0.0, "in_max": 1000.0, "dtype": "uint8", "clip": False, "out_max": 2}
    assert parse(registry.get_kernel("band-math"), ["expr=b1 == b2"]) == {"expr": "b1 == b2"}
    assert parse(registry.get_kernel("focal-mean"), ["size=5"]) == {"size": 5}


@pytest.mark.parametrize(
    ("kernel", "items", "fragment"),
    [
        ("focal-mean", ["bogus=1"], "kernel 'focal-mean' has no parameter 'bogus'; it takes"),
        ("focal-mean", ["size=abc"], "parameter 'size' expects int, got 'abc'"),
        ("focal-mean", ["size"], "expected key=value"),
        ("focal-mean", ["size=3", "size=5"], "given twice"),
        ("rescale", ["clip=maybe"], "parameter 'clip' expects bool"),
        ("reverse-bands", ["x=1"], "it takes none"),
    ],
)
def test_bad_command_line_parameters_are_one_line_errors(kernel, items, fragment) -> None:
    with pytest.raises(pipeline.KernelError) as info:
        parse_param_strings(registry.get_kernel(kernel), items)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_missing_required_parameters_are_named() -> None:
    with pytest.raises(pipeline.KernelError, match=r"needs parameter\(s\) \['value'\]"):
        pipeline.apply_kernel(_da(), "threshold")


def test_invalid_specs_are_refused() -> None:
    def f(block):
        return block

    with pytest.raises(pipeline.KernelError, match="nodata policy"):
        pipeline.KernelSpec(name="x", func=f, description="", nodata="mask")  # type: ignore[arg-type]
    with pytest.raises(pipeline.KernelError, match="undeclared parameters"):
        pipeline.KernelSpec(name="x", func=f, description="", param_types={"a": int})
    with pytest.raises(pipeline.KernelError, match="bands_out"):
        pipeline.KernelSpec(name="x", func=f, description="", bands_out=0)
    with pytest.raises(pipeline.KernelError, match="depth"):
        pipeline.apply_kernel(
            _da(), pipeline.KernelSpec(name="x", func=f, description="", depth=-1)
        )
