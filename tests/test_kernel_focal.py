"""focal-mean/min/max: against a per-window numpy reference, nodata rules, and any chunking."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import pipeline
from pipeline.kernels.testing import georeferenced, synthetic_dem
from tests.reference import window_filter
from tests.test_apply import chunkings

_STATS = {"focal-mean": np.nanmean, "focal-min": np.nanmin, "focal-max": np.nanmax}


def _reference(values: np.ndarray, valid: np.ndarray, kernel: str, size: int) -> np.ndarray:
    """The statistic over each window's valid pixels (NaN outside the raster), NaN centres."""
    stat = _STATS[kernel]

    def window(w: np.ndarray) -> float:
        return np.nan if np.isnan(w[w.size // 2]) else float(stat(w))

    masked = np.where(valid, values.astype(np.float64), np.nan)
    return window_filter(masked, window, size)


def _with_nodata(dtype: str, nodata: float) -> np.ndarray:
    dem = synthetic_dem(23, 19, seed=7, dtype=dtype, scale=0.1 if dtype == "uint8" else 1.0)
    dem[0, 4:7, 5:9] = nodata
    dem[0, :, 0] = nodata  # a whole edge column
    dem[0, 15, 12] = nodata
    return dem


@pytest.mark.parametrize("kernel", sorted(_STATS))
@pytest.mark.parametrize(("dtype", "nodata", "size"), [("float32", -9999.0, 3), ("uint8", 255, 5)])
def test_focal_matches_generic_filter(kernel, dtype, nodata, size) -> None:
    dem = _with_nodata(dtype, nodata)
    da = georeferenced(dem, nodata=nodata).chunk({"y": 7, "x": 6})
    out = pipeline.apply_kernel(da, kernel, size=size)
    got = out.values[0]
    valid = dem[0] != nodata
    ref = _reference(dem[0], valid, kernel, size)
    expected_dtype = np.result_type(dem.dtype, np.float32) if kernel == "focal-mean" else dem.dtype
    assert out.dtype == expected_dtype
    nd = out.rio.nodata
    assert np.isnan(got[~valid]).all() if np.isnan(nd) else (got[~valid] == nd).all()
    np.testing.assert_allclose(got[valid], ref[valid], rtol=1e-6)


def test_nan_pixels_of_a_float_raster_without_declared_nodata_are_nodata() -> None:
    dem = synthetic_dem(9, 10, seed=1)
    dem[0, 4, 4] = np.nan
    out = pipeline.apply_kernel(georeferenced(dem), "focal-mean")
    got = out.values[0]
    assert np.isnan(out.rio.nodata)
    np.testing.assert_array_equal(np.argwhere(np.isnan(got)), [[4, 4]])
    # The NaN neighbour is left out of its neighbours' means.
    np.testing.assert_allclose(got[3, 4], np.nanmean(dem[0, 2:5, 3:6]), rtol=1e-6)


def test_size_one_is_the_identity_and_bad_sizes_are_refused() -> None:
    dem = _with_nodata("float32", -9999.0)
    da = georeferenced(dem, nodata=-9999.0)
    np.testing.assert_array_equal(pipeline.apply_kernel(da, "focal-max", size=1).values, dem)
    for bad in (0, 2, -3, 3.0, True, "3"):
        with pytest.raises(pipeline.KernelError, match="odd integer"):
            pipeline.apply_kernel(da, "focal-mean", size=bad)


@functools.cache
def _small() -> xr.DataArray:
    return georeferenced(_with_nodata("float32", -9999.0)[:, :10, :9], nodata=-9999.0)


@functools.cache
def _whole(kernel: str, size: int) -> np.ndarray:
    return pipeline.apply_kernel(_small(), kernel, size=size).values


@settings(max_examples=20, deadline=None)
@given(
    ys=chunkings(10),
    xs=chunkings(9),
    kernel=st.sampled_from(sorted(_STATS)),
    size=st.sampled_from([3, 5]),
)
def test_any_chunking_gives_exactly_the_whole_array_result(ys, xs, kernel, size) -> None:
    out = pipeline.apply_kernel(_small().chunk({"y": ys, "x": xs}), kernel, size=size)
    np.testing.assert_array_equal(out.compute(scheduler="sync").values, _whole(kernel, size))
