"""band-math: against the same expressions written in numpy, nodata rules, and safe parsing."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

import pipeline
from pipeline.kernels.band_math import compile_expression
from pipeline.kernels.testing import georeferenced
from pipeline.testing import synthetic_array


def _bands(dtype: str = "uint16", nodata: float | None = None) -> np.ndarray:
    data = synthetic_array(4, 15, 17, dtype=dtype, seed=11)
    data[2:4, 0, :5] = 0  # b3 = b4 = 0: NDVI divides by zero there
    if nodata is not None:
        data[0, 7, 7] = nodata  # b1 only
        data[3, 9, 3] = nodata  # b4 only
    return data


def _f(data: np.ndarray) -> list[np.ndarray]:
    return [b.astype(np.float64) for b in data]


EXPRESSIONS = {
    "(b4 - b3) / (b4 + b3)": lambda b1, b2, b3, b4: np.divide(
        b4 - b3, b4 + b3, out=np.full_like(b1, np.nan), where=(b4 + b3) != 0
    ),
    "sqrt(abs(b1 - b2)) * 2.5 + max(b1, b3) - min(b2, 10) ** 2": lambda b1, b2, b3, b4: (
        np.sqrt(np.abs(b1 - b2)) * 2.5 + np.maximum(b1, b3) - np.minimum(b2, 10) ** 2
    ),
    "where(b1 > 5000, b1, -b2) + 0.5": lambda b1, b2, b3, b4: np.where(b1 > 5000, b1, -b2) + 0.5,
    "(b1 >= 4000) & (b2 < 6000) | (b3 == 0)": lambda b1, b2, b3, b4: (
        ((b1 >= 4000) & (b2 < 6000)) | (b3 == 0)
    ).astype(float),
    "-b1 / 3 + 2 ** 0.5 * (b2 != b3) - (b4 <= b1)": lambda b1, b2, b3, b4: (
        -b1 / 3 + 2**0.5 * (b2 != b3) - (b4 <= b1)
    ),
    "log(b2) - exp(b1 / 10000)": lambda b1, b2, b3, b4: np.log(b2) - np.exp(b1 / 10000),
}


@pytest.mark.parametrize("expr", sorted(EXPRESSIONS))
def test_band_math_matches_numpy(expr) -> None:
    data = _bands()
    out = pipeline.apply_kernel(georeferenced(data).chunk({"y": 8, "x": 9}), "band-math", expr=expr)
    with np.errstate(all="ignore"):
        expected = EXPRESSIONS[expr](*_f(data)).astype(np.float32)
    expected[~np.isfinite(expected)] = np.nan
    assert out.dtype == np.float32 and out.sizes["band"] == 1 and np.isnan(out.rio.nodata)
    np.testing.assert_allclose(out.values[0], expected, rtol=1e-6, equal_nan=True)


def test_division_by_zero_gives_nodata_unless_where_discards_it() -> None:
    data = _bands()
    ndvi = pipeline.apply_kernel(georeferenced(data), "band-math", expr="(b4 - b3) / (b4 + b3)")
    assert np.isnan(ndvi.values[0, 0, :5]).all() and np.isfinite(ndvi.values[0, 1:]).all()
    safe = pipeline.apply_kernel(
        georeferenced(data), "band-math", expr="where(b4 + b3 == 0, -1, (b4 - b3) / (b4 + b3))"
    )
    assert (safe.values[0, 0, :5] == -1).all()


def test_nodata_only_in_bands_the_expression_uses_makes_nodata() -> None:
    data = _bands(nodata=65535)
    da = georeferenced(data, nodata=65535)
    out = pipeline.apply_kernel(da, "band-math", expr="b1 + b2").values[0]
    assert np.isnan(out[7, 7]) and np.isfinite(out[9, 3])  # b4's nodata is not used
    out = pipeline.apply_kernel(da, "band-math", expr="b4 * 1").values[0]
    assert np.isfinite(out[7, 7]) and np.isnan(out[9, 3])


def test_ndvi_on_a_real_rgb_raster(shared_data) -> None:
    path = shared_data / "RGB.byte.tif"
    out = pipeline.apply_kernel(
        pipeline.open_raster(path), "band-math", expr="(b3 - b1) / (b3 + b1)"
    )
    with rasterio.open(path) as ds:
        b1, b3 = ds.read(1).astype(np.float64), ds.read(3).astype(np.float64)
        nodata = (ds.read(1) == ds.nodata) | (ds.read(3) == ds.nodata)
    with np.errstate(all="ignore"):
        expected = ((b3 - b1) / (b3 + b1)).astype(np.float32)
    expected[nodata | ~np.isfinite(expected)] = np.nan
    np.testing.assert_allclose(out.values[0], expected, rtol=1e-6, equal_nan=True)
    assert np.isnan(out.values[0]).sum() == (nodata | ((b3 + b1) == 0)).sum()


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("__import__('os').system('true')", "not allowed"),
        ("b1.real", "Attribute"),
        ("x + 1", "unknown name 'x'"),
        ("b0 + 1", "unknown name 'b0'"),
        ("b5 * 2", "uses b5 but the raster has 4 band(s)"),
        ("sqrt(b1, b2)", "sqrt() takes 1 argument"),
        ("max(b1, b2, key=abs)", "not allowed"),
        ("'b1'", "not a number"),
        ("True + b1", "not a number"),
        ("b1[0]", "Subscript"),
        ("1 < b1 < 3", "single comparisons"),
        ("lambda: b1", "Lambda"),
        ("b1 +", "syntax error"),
        ("b1 // 2", "BinOp"),
        ("b1 if b2 else b3", "IfExp"),
        ("", "non-empty"),
        ("1e999 * b1", "not finite"),
    ],
)
def test_unsafe_or_invalid_expressions_are_refused(expr, fragment) -> None:
    with pytest.raises(pipeline.KernelError, match="band-math") as info:
        compile_expression(expr, 4)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_the_program_needs_a_stack_as_deep_as_the_expression() -> None:
    program = compile_expression("where(b1 > 1, b2 * (b3 + b4), 0)", 4)
    assert program["stack"] == 4
    assert program["used"].tolist() == [0, 1, 2, 3]
