"""rescale, cast, threshold: against numpy, nodata remapping, clipping, and any chunking."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import pipeline
from pipeline.kernels.testing import georeferenced, synthetic_dem
from tests.test_apply import chunkings

NODATA = -9999.0


def _dem() -> np.ndarray:
    dem = synthetic_dem(12, 14, seed=4)
    dem[0, 3, 3:6] = NODATA
    dem[0, 8, 10] = np.nan  # NaN is nodata in float rasters too
    dem[0, 0, 0] = 2.5  # rounding ties: away from zero
    dem[0, 0, 1] = -2.5
    dem[0, 0, 2] = 1e6  # beyond uint8 and int16
    return dem


def _round_half_away(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def _invalid(dem: np.ndarray) -> np.ndarray:
    return (dem[0] == NODATA) | np.isnan(dem[0])


@pytest.mark.parametrize(
    ("dtype", "nodata", "lo", "hi"),
    [
        ("uint8", 255, 0, 254),  # -9999 does not fit: max is nodata, valid values stop short
        ("int16", -9999, -32768, 32767),  # fits: kept, full range for valid values
        ("float32", NODATA, -np.finfo("float32").max, np.finfo("float32").max),
    ],
)
def test_cast_rounds_clips_and_remaps_nodata(dtype, nodata, lo, hi) -> None:
    dem = _dem()
    out = pipeline.apply_kernel(georeferenced(dem, nodata=NODATA), "cast", dtype=dtype)
    got = out.values[0]
    assert out.dtype == dtype and out.rio.nodata == nodata
    valid = ~_invalid(dem)
    v = dem[0][valid].astype(np.float64)
    expected = _round_half_away(v) if np.dtype(dtype).kind in "iu" else v
    np.testing.assert_array_equal(got[valid], np.clip(expected, lo, hi).astype(dtype))
    assert (got[~valid] == nodata).all()
    if dtype != "float32":
        assert got[0, :3].tolist() == [3, -3 if lo < 0 else 0, hi]


def test_cast_to_int64_does_not_overflow() -> None:
    data = np.array([[[1e30, -1e30, 42.4]]], dtype=np.float64)
    got = pipeline.apply_kernel(georeferenced(data), "cast", dtype="int64").values[0, 0]
    # Float input without nodata may hold NaN, so int64 output gets nodata -2**63; valid values
    # clip to the nearest float64 inside the range, never onto nodata.
    out = pipeline.apply_kernel(georeferenced(data), "cast", dtype="int64")
    assert out.rio.nodata == -(2**63)
    assert got.tolist() == [2**63 - 1024, -(2**63) + 1024, 42]


@pytest.mark.parametrize("clip", [True, False])
def test_rescale_matches_numpy(clip) -> None:
    dem = _dem()
    params = {"in_min": 200.0, "in_max": 1200.0, "out_min": 10.0, "out_max": 250.0}
    out = pipeline.apply_kernel(
        georeferenced(dem, nodata=NODATA), "rescale", dtype="uint8", clip=clip, **params
    )
    valid = ~_invalid(dem)
    expected = 10.0 + (dem[0][valid].astype(np.float64) - 200.0) * (240.0 / 1000.0)
    if clip:
        expected = np.clip(expected, 10.0, 250.0)
    expected = np.clip(_round_half_away(expected), 0, 254).astype(np.uint8)
    assert out.rio.nodata == 255 and "units" not in out.attrs
    np.testing.assert_array_equal(out.values[0][valid], expected)
    assert (out.values[0][~valid] == 255).all()


def test_rescale_inverted_range_and_float_output() -> None:
    dem = _dem()
    out = pipeline.apply_kernel(
        georeferenced(dem), "rescale", in_min=0, in_max=1000, out_min=1.0, out_max=0.0
    )
    v = dem[0].astype(np.float64)
    expected = np.clip(1.0 - v / 1000.0, 0.0, 1.0).astype(np.float32)
    valid = np.isfinite(dem[0])  # no declared nodata: -9999 is a value, clipped to 1
    np.testing.assert_allclose(out.values[0][valid], expected[valid], rtol=1e-6)
    assert np.isnan(out.values[0][~valid]).all()


def test_rescale_beyond_the_dtype_range_saturates() -> None:
    data = np.array([[[0.0, 0.5, 1.0, -1.0]]], dtype=np.float32)
    params = {"in_min": 0, "in_max": 1, "out_min": -1e30, "out_max": 1e30, "dtype": "int16"}
    got = pipeline.apply_kernel(georeferenced(data), "rescale", **params).values[0, 0]
    assert got.tolist() == [-32767, 0, 32767, -32767]  # -32768 is the nodata value


def test_threshold_matches_numpy() -> None:
    dem = _dem()
    out = pipeline.apply_kernel(georeferenced(dem, nodata=NODATA), "threshold", value=700)
    expected = (dem[0] > 700).astype(np.uint8)
    expected[_invalid(dem)] = 255
    assert out.dtype == np.uint8 and out.rio.nodata == 255
    np.testing.assert_array_equal(out.values[0], expected)


def test_threshold_of_an_integer_raster_without_nodata(shared_data) -> None:
    da = pipeline.open_raster(shared_data / "byte.tif")
    out = pipeline.apply_kernel(da, "threshold", value=120.5)
    np.testing.assert_array_equal(out.values, (da.values > 120.5).astype(np.uint8))


@pytest.mark.parametrize(
    ("kernel", "params", "fragment"),
    [
        ("cast", {"dtype": "complex64"}, "dtype must be one of"),
        ("cast", {"dtype": "nonsense"}, "dtype must be one of"),
        ("cast", {}, "needs parameter(s) ['dtype']"),
        ("rescale", {"in_min": 1, "in_max": 1}, "in_min and in_max are equal"),
        ("rescale", {"in_min": 0, "in_max": float("nan")}, "finite"),
        ("rescale", {"in_min": 0, "in_max": 1, "clip": "yes"}, "clip must be"),
        ("threshold", {"value": "high"}, "value must be a number"),
    ],
)
def test_bad_parameters_are_refused(kernel, params, fragment) -> None:
    with pytest.raises(pipeline.KernelError) as info:
        pipeline.apply_kernel(georeferenced(_dem()), kernel, **params)
    assert fragment in str(info.value)


_PARAMS = {
    "cast": {"dtype": "int16"},
    "rescale": {"in_min": 0, "in_max": 1500, "dtype": "uint8"},
    "threshold": {"value": 800},
    "band-math": {"expr": "(b2 - b1) / (b2 + b1 - 900)"},
}


@functools.cache
def _small() -> xr.DataArray:
    data = np.concatenate([_dem(), synthetic_dem(12, 14, seed=9)])[:, :9, :11]
    return georeferenced(data, nodata=NODATA)


@functools.cache
def _whole(kernel: str) -> np.ndarray:
    return pipeline.apply_kernel(_small(), kernel, **_PARAMS[kernel]).values


@settings(max_examples=20, deadline=None)
@given(
    bands=chunkings(2),
    ys=chunkings(9),
    xs=chunkings(11),
    kernel=st.sampled_from(sorted(_PARAMS)),
)
def test_any_chunking_gives_exactly_the_whole_array_result(bands, ys, xs, kernel) -> None:
    da = _small().chunk({"band": bands, "y": ys, "x": xs})
    out = pipeline.apply_kernel(da, kernel, **_PARAMS[kernel])
    np.testing.assert_array_equal(out.compute(scheduler="sync").values, _whole(kernel))
