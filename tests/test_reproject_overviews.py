"""Overview-aware reads: same grid, close values, the overview really read, chunked exactness.

Inputs are COG-like copies made in ``tmp_path``: RGB.byte.tif with ``build_overviews([2, 4,
8], average)`` and a larger generated float32 raster with nodata and the same overviews.
"""

from __future__ import annotations

import pathlib
import shutil

import dask
import numpy as np
import pytest
import rasterio
import xarray as xr
from click.testing import CliRunner
from rasterio.enums import Resampling

import pipeline
import pipeline.io.files as files_module
from pipeline.cli.reproject import reproject as reproject_command
from pipeline.testing import write_synthetic_raster
from pipeline.warp.engine import warp_array
from pipeline.warp.overviews import (
    overview_level_for,
    overview_warp_spec,
)
from pipeline.warp.reproject import reproject, warp_spec
from tests.conftest import differing, whole_warp

_CLUSTER = ["--threads", "2", "--dashboard-address", "127.0.0.1:0", "--no-progress"]
FACTORS = [2, 4, 8]
#: (dst_crs, resolution) shrinking each fixture about 8x (less shrunk axis), same CRS and to
#: EPSG:4326 (whose default pixel is 0.00285 degrees for RGB.byte.tif, 0.00031 for float).
RGB_CASES = [("EPSG:32618", 8 * 300.0379266750948), ("EPSG:4326", 0.0243)]
FLOAT_CASES = [("EPSG:32618", 8 * 30.0), ("EPSG:4326", 0.0029)]


@pytest.fixture(autouse=True)
def _threads():
    with dask.config.set(scheduler="threads"):
        yield


def _with_overviews(path: pathlib.Path) -> pathlib.Path:
    with rasterio.open(path, "r+") as ds:
        ds.build_overviews(FACTORS, Resampling.average)
    return path


@pytest.fixture(scope="module")
def rgb_plain(shared_data, tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("plain") / "rgb.tif"
    shutil.copyfile(shared_data / "RGB.byte.tif", path)
    return path


@pytest.fixture(scope="module")
def rgb_ovr(shared_data, tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("ovr") / "rgb.tif"
    shutil.copyfile(shared_data / "RGB.byte.tif", path)
    return _with_overviews(path)


@pytest.fixture(scope="module")
def float_ovr(tmp_path_factory) -> pathlib.Path:
    """1200 x 1000 float32, two bands, smooth with noise, a nodata (-9999) hole, 256 tiles."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:1200, 0:1000].astype("float32")
    base = 100.0 * np.sin(x / 90.0) * np.cos(y / 130.0) + 0.05 * x
    data = np.stack([base, 0.5 * base + 20.0]) + rng.normal(0, 2, (2, 1200, 1000))
    data = data.astype("float32")
    data[:, 300:520, 410:700] = -9999.0
    path = tmp_path_factory.mktemp("float") / "float.tif"
    write_synthetic_raster(path, data=data, block=256, nodata=-9999.0, origin=(500000.0, 4500000.0))
    return _with_overviews(path)


def _open_counting(monkeypatch) -> list[tuple[int | None, int]]:
    """Record ``(overview_level, pixels)`` of every window read from an `open_raster` file.

    Both paths read through ``read_window``: the open layer's chunks, and the windows reprojection
    tasks read from the file directly.
    """
    reads: list[tuple[int | None, int]] = []
    real = files_module.read_window

    def counting(path, identity, indexes, dtype, overview_level, rows, cols):
        out = real(path, identity, indexes, dtype, overview_level, rows, cols)
        reads.append((overview_level, int(out.size)))
        return out

    monkeypatch.setattr(files_module, "read_window", counting)
    return reads


def _overview_reference(path, level: int, da: xr.DataArray, dst_crs, **kwargs) -> np.ndarray:
    """Whole-array warp of overview ``level``'s pixels onto the full-resolution grid."""
    with rasterio.open(path, overview_level=level) as ds:
        pixels = ds.read()
    spec = overview_warp_spec(warp_spec(da, dst_crs, **kwargs), *pixels.shape[1:])
    return warp_array(spec, pixels.astype(spec.dtype)).astype(da.dtype)


def _valid(a: np.ndarray, nodata: float) -> np.ndarray:
    return ~(np.isnan(a) | (a == nodata)) if a.dtype.kind == "f" else a != nodata


# -- reproject: same grid, close values, really the overview ---------------------------------


@pytest.mark.parametrize(("dst_crs", "resolution"), RGB_CASES)
def test_rgb_same_grid_and_close_values(rgb_ovr, dst_crs, resolution) -> None:
    da = pipeline.open_raster(rgb_ovr)
    kwargs = {"resolution": resolution, "resampling": "average"}
    fast = reproject(da, dst_crs, **kwargs)
    full = reproject(da, dst_crs, overviews=False, **kwargs)
    assert fast.rio.transform() == full.rio.transform()
    assert fast.shape == full.shape and fast.rio.crs == full.rio.crs
    np.testing.assert_array_equal(fast.x, full.x)
    np.testing.assert_array_equal(fast.y, full.y)
    a, b = fast.values.astype(int), full.values.astype(int)
    both = _valid(a, 0) & _valid(b, 0)
    diff = np.abs(a - b)[both]
    # Tolerance: mean absolute difference under 2% of the 0-255 range, median at most 2 DN,
    # three quarters of the pixels within 5 DN. Measured on GDAL 3.10: mean 2.6 / 4.5 DN,
    # median 1 / 2 DN, 86% / 76% within 5 DN (UTM / EPSG:4326). Landsat detail is
    # high-frequency and the 8x overview (99 pixels for 791) is not aligned with the
    # destination pixels, so its average of averages is a little blurrier; positions are
    # exact (see the ramp test).
    assert diff.mean() < 0.02 * 255
    assert np.median(diff) <= 2
    assert (diff <= 5).mean() > 0.75
    # the valid footprints agree but for a one-pixel collar
    assert both.sum() > 0.95 * (_valid(a, 0) | _valid(b, 0)).sum()


@pytest.mark.parametrize(("dst_crs", "resolution"), FLOAT_CASES)
def test_float_same_grid_and_close_values(float_ovr, dst_crs, resolution) -> None:
    da = pipeline.open_raster(float_ovr)
    kwargs = {"resolution": resolution, "resampling": "average"}
    fast = reproject(da, dst_crs, **kwargs)
    full = reproject(da, dst_crs, overviews=False, **kwargs)
    assert fast.rio.transform() == full.rio.transform()
    assert fast.shape == full.shape and fast.rio.crs == full.rio.crs
    a, b = fast.values, full.values
    both = _valid(a, -9999.0) & _valid(b, -9999.0)
    diff = np.abs(a - b)[both]
    value_range = float(np.ptp(b[both]))  # about 250
    assert diff.mean() < 0.01 * value_range
    assert np.percentile(diff, 95) < 0.03 * value_range
    # the nodata hole stays a hole, give or take its blurred edge
    assert abs(int(both.sum()) - int(_valid(b, -9999.0).sum())) < 0.03 * both.size


@pytest.mark.parametrize("method", ["bilinear", "cubic", "average"])
def test_overview_reads_sample_the_same_positions(tmp_path, method) -> None:
    """A raster whose values are its own pixel-centre coordinates (exact 2/4/8x overviews)."""
    y, x = np.mgrid[0:1024, 0:1024].astype("float64")
    ramp = np.stack([500000.0 + 30.0 * (x + 0.5), 4500000.0 - 30.0 * (y + 0.5)])
    path = _with_overviews(
        pathlib.Path(write_synthetic_raster(tmp_path / "ramp.tif", data=ramp, block=256))
    )
    da = pipeline.open_raster(path)
    for dst_crs, resolution, tolerance in [("EPSG:32618", 240.0, 1e-6), ("EPSG:4326", 0.0029, 5)]:
        fast = reproject(da, dst_crs, resolution=resolution, resampling=method).values
        full = reproject(da, dst_crs, resolution=resolution, resampling=method, overviews=False)
        diff = np.abs(fast - full.values)[:, 3:-3, 3:-3]  # metres; destination pixels ~250 m
        assert not np.isnan(diff).any()
        assert np.median(diff) < tolerance, (dst_crs, np.median(diff))


def test_the_overview_is_read_and_no_overviews_reads_full_resolution(rgb_ovr, monkeypatch) -> None:
    reads = _open_counting(monkeypatch)
    da = pipeline.open_raster(rgb_ovr)
    dst_crs, resolution = RGB_CASES[0]
    fast = reproject(da, dst_crs, resolution=resolution, resampling="average")
    assert da.data.name not in fast.data.dask.layers
    fast.compute()
    assert {level for level, _ in reads} == {2}
    assert sum(n for _, n in reads) <= 3 * 90 * 99  # the 8x overview, nothing more
    reads.clear()
    full = reproject(da, dst_crs, resolution=resolution, resampling="average", overviews=False)
    full.compute()
    assert {level for level, _ in reads} == {None}
    assert sum(n for _, n in reads) == 3 * 718 * 791


@pytest.mark.parametrize(
    "case", ["shrink below 2x", "no overviews", "kernel applied", "sliced", "rechunked"]
)
def test_full_resolution_is_read_when_overviews_do_not_apply(
    rgb_ovr, rgb_plain, case, monkeypatch
) -> None:
    reads = _open_counting(monkeypatch)
    resolution = 8 * 300.0379266750948
    da = pipeline.open_raster(rgb_plain if case == "no overviews" else rgb_ovr)
    if case == "shrink below 2x":
        resolution = 1.9 * 300.0379266750948
    elif case == "kernel applied":
        da = pipeline.apply_kernel(da, "focal-max")
    elif case == "sliced":
        da = da.isel(x=slice(0, 700))
    elif case == "rechunked":
        da = da.chunk({"y": 100, "x": 100})
    kwargs = {"resolution": resolution, "resampling": "average"}
    out = reproject(da, "EPSG:32618", **kwargs)
    assert differing(out.values, whole_warp(da, "EPSG:32618", **kwargs)) == 0
    assert reads and {level for level, _ in reads} == {None}


# -- chunked exactness on the overview -------------------------------------------------------


@pytest.mark.parametrize("method", ["nearest", "bilinear", "cubic", "average", "mode"])
@pytest.mark.parametrize("chunks", [17, 64])
def test_chunked_overview_warp_equals_the_whole_overview_warp(rgb_ovr, method, chunks) -> None:
    da = pipeline.open_raster(rgb_ovr)
    dst_crs, resolution = RGB_CASES[1]
    kwargs = {"resolution": resolution, "resampling": method}
    out = reproject(da, dst_crs, chunks=chunks, **kwargs)
    level = overview_level_for(warp_spec(da, dst_crs, **kwargs), 791, [396, 198, 99])
    assert level == 2
    whole = _overview_reference(rgb_ovr, level, da, dst_crs, **kwargs)
    assert differing(out.values, whole) == 0


@pytest.mark.parametrize("method", ["bilinear", "average"])
def test_chunked_float_overview_warp_equals_the_whole_overview_warp(float_ovr, method) -> None:
    da = pipeline.open_raster(float_ovr)
    dst_crs, resolution = FLOAT_CASES[0]
    kwargs = {"resolution": 4 * 30.0, "resampling": method}  # 4x: the 4x overview (level 1)
    out = reproject(da, dst_crs, chunks=(37, 50), **kwargs)
    whole = _overview_reference(float_ovr, 1, da, dst_crs, **kwargs)
    assert differing(out.values, whole) == 0
    assert out.rio.transform() == reproject(da, dst_crs, overviews=False, **kwargs).rio.transform()
    del resolution


# -- CLI -------------------------------------------------------------------------------------


def test_cli_no_overviews_reads_full_resolution(rgb_ovr, tmp_path) -> None:
    dst_crs, resolution = RGB_CASES[0]
    common = ["--dst-crs", dst_crs, "--resolution", resolution, "--resampling", "average"]
    outputs = {}
    for flag in ("--overviews", "--no-overviews"):
        out = tmp_path / f"{flag.strip('-')}.tif"
        args = [rgb_ovr, out, *common, flag]
        result = CliRunner().invoke(reproject_command, [*map(str, args), *_CLUSTER])
        assert result.exit_code == 0, result.output
        with rasterio.open(out) as ds:
            outputs[flag] = (ds.read(), ds.transform, ds.crs)
    (fast, t1, c1), (full, t2, c2) = outputs["--overviews"], outputs["--no-overviews"]
    assert (t1, c1) == (t2, c2)
    da = pipeline.open_raster(rgb_ovr)
    kwargs = {"resolution": resolution, "resampling": "average"}
    assert differing(full, whole_warp(da, dst_crs, **kwargs)) == 0
    assert differing(fast, _overview_reference(rgb_ovr, 2, da, dst_crs, **kwargs)) == 0
    assert differing(fast, full) > 0


def test_cli_help_mentions_gdalwarp_ovr() -> None:
    result = CliRunner().invoke(reproject_command, ["--help"])
    assert result.exit_code == 0
    assert "--no-overviews" in result.output and "-ovr AUTO" in result.output
