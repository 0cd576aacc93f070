"""Opt-in approximate transformer (``error_threshold``, gdalwarp ``-et``) against independent
references: `rasterio.warp.reproject` with GDAL's defaults, and a coordinate ramp whose
bilinear warp reads back the source position every output pixel sampled.

Measured on rasterio 1.4.4 / GDAL 3.10.3, RGB.byte.tif -> EPSG:3857 (791 x 718 x 3):

* whole tile, 0.125: 0 differing values from ``rasterio.warp.reproject`` (nearest, bilinear);
* 128-pixel chunks vs one chunk, 0.125: nearest 46923 values differ (2.65%), bilinear
  322677 (18.2%, largest difference 26 among pixels valid in both), 268 values valid in one
  and nodata in the other (footprint edge);
* ramp, bilinear: sampled positions within 0.1123 source pixel of the exact ones for 0.125
  (0.447 for 0.5), and chunkings (64, 100, 128 px) within 0.1123 of one another.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import shutil

import numpy as np
import pytest
import rasterio
import xarray as xr
from click.testing import CliRunner
from dask.base import tokenize

import pipeline
from pipeline.batch import TileOptions, _reproject_tile, _warp_tile_direct, plan_batch
from pipeline.batch_plan import TileJob
from pipeline.cli import _Group
from pipeline.cli.batch import batch as batch_command
from pipeline.cli.reproject import reproject as reproject_command
from pipeline.errors import ReprojectError
from pipeline.reprojection import warp_spec
from pipeline.warpengine import warp_array
from tests.conftest import gdal_default_warp

DST = "EPSG:3857"
GDAL_DEFAULT = 0.125
_CLUSTER = ["--threads", "1", "--dashboard-address", "127.0.0.1:0", "--no-progress"]
group = _Group(name="pipeline", commands={"reproject": reproject_command, "batch": batch_command})


def _gdal_default(path: pathlib.Path, method: str) -> np.ndarray:
    """``rasterio.warp.reproject`` of the whole array with GDAL's defaults (no tolerance)."""
    da = pipeline.open_raster(path)
    spec = warp_spec(da, DST, resampling=method)  # only for the destination grid
    with rasterio.open(path) as ds:
        data, nodata = ds.read(), ds.nodata
    return gdal_default_warp(data, spec, method, nodata)


@pytest.fixture(scope="module")
def rgb(shared_data: pathlib.Path) -> pathlib.Path:
    return shared_data / "RGB.byte.tif"


@pytest.fixture(scope="module")
def reference(rgb: pathlib.Path) -> dict[str, np.ndarray]:
    return {m: _gdal_default(rgb, m) for m in ("nearest", "bilinear")}


# --- XML and spec ------------------------------------------------------------------------


def test_zero_keeps_the_exact_xml_and_a_threshold_only_wraps_it(rgb) -> None:
    da = pipeline.open_raster(rgb)
    default = warp_spec(da, DST, resampling="bilinear")
    zero = warp_spec(da, DST, resampling="bilinear", error_threshold=0)
    approx = warp_spec(da, DST, resampling="bilinear", error_threshold=GDAL_DEFAULT)
    assert zero == default and zero.error_threshold == 0.0
    exact_xml = default.warped_vrt_xml("/vsimem/src.vrt")
    assert zero.warped_vrt_xml("/vsimem/src.vrt") == exact_xml
    assert "<Transformer><GenImgProjTransformer>" in exact_xml and "Approx" not in exact_xml
    approx_xml = approx.warped_vrt_xml("/vsimem/src.vrt")
    head = "<ApproxTransformer><MaxError>0.125</MaxError><BaseTransformer>"
    tail = "</BaseTransformer></ApproxTransformer>"
    assert f"<Transformer>{head}<GenImgProjTransformer>" in approx_xml
    assert f"</GenImgProjTransformer>{tail}</Transformer>" in approx_xml
    assert approx_xml.replace(head, "").replace(tail, "") == exact_xml
    # The threshold is part of the spec's identity: tokens, hashes, equality.
    assert tokenize(approx) != tokenize(default) and hash(approx) != hash(default)
    assert tokenize(dataclasses.replace(approx, error_threshold=0.0)) == tokenize(default)


@pytest.mark.parametrize("method", ["nearest", "bilinear"])
def test_zero_is_todays_exact_warp_for_every_chunking(rgb, method) -> None:
    da = pipeline.open_raster(rgb)
    whole = warp_array(warp_spec(da, DST, resampling=method), da.values)
    chunked = pipeline.reproject(da, DST, resampling=method, error_threshold=0.0, chunks=128)
    np.testing.assert_array_equal(chunked.values, whole)
    default = pipeline.reproject(da, DST, resampling=method, chunks=128)
    assert chunked.data.name == default.data.name  # same graph, same token


# --- whole tile == GDAL's default ----------------------------------------------------------


@pytest.mark.parametrize("method", ["nearest", "bilinear"])
def test_whole_tile_equals_gdal_default(rgb, reference, tmp_path, method) -> None:
    expected = reference[method]
    da = pipeline.open_raster(rgb)
    spec = warp_spec(da, DST, resampling=method, error_threshold=GDAL_DEFAULT)
    np.testing.assert_array_equal(warp_array(spec, da.values), expected)
    one_chunk = pipeline.reproject(
        da, DST, resampling=method, error_threshold=GDAL_DEFAULT, chunks=max(spec.dst.shape)
    )
    assert one_chunk.data.numblocks == (1, 1, 1)
    np.testing.assert_array_equal(one_chunk.values, expected)
    # Both batch tile paths warp this small tile whole (the dask path: one default chunk).
    opts = TileOptions(DST, resampling=method, error_threshold=GDAL_DEFAULT)
    _warp_tile_direct(TileJob(str(rgb), str(tmp_path / "direct.tif")), opts, overwrite=False)
    _reproject_tile(TileJob(str(rgb), str(tmp_path / "dask.tif")), opts, overwrite=False)
    for name in ("direct.tif", "dask.tif"):
        with rasterio.open(tmp_path / name) as ds:
            np.testing.assert_array_equal(ds.read(), expected)


# --- chunked: different, bounded ------------------------------------------------------------


def test_chunked_differs_from_one_chunk_within_measured_bounds(rgb, reference) -> None:
    """Each chunk approximates along its own row segments, so values move where the sampled
    position (within 0.125 source pixel of the exact one either way) crosses a pixel edge
    (nearest) or shifts along the local gradient (bilinear). Bounds: measured x ~1.5."""
    da = pipeline.open_raster(rgb)
    for method, max_share, max_valid_diff in (("nearest", 0.04, None), ("bilinear", 0.27, 40)):
        whole = reference[method].astype(np.int16)
        chunked = pipeline.reproject(
            da, DST, resampling=method, error_threshold=GDAL_DEFAULT, chunks=128
        ).values.astype(np.int16)
        differ = chunked != whole
        share = np.count_nonzero(differ) / differ.size
        assert 0 < share < max_share, (method, share)  # measured 2.65% and 18.2%
        validity = np.count_nonzero((chunked == 0) != (whole == 0))
        assert validity < 0.0005 * differ.size, (method, validity)  # measured 268 of 1.7M
        if max_valid_diff is not None:
            valid = (chunked != 0) & (whole != 0)
            largest = int(np.abs(chunked - whole)[valid].max())
            assert largest <= max_valid_diff, largest  # measured 26


def _ramp(rgb: pathlib.Path) -> xr.DataArray:
    """RGB.byte.tif's grid with band 1 = column and band 2 = row of each pixel centre."""
    like = pipeline.open_raster(rgb)
    h, w = like.sizes["y"], like.sizes["x"]
    rows, cols = np.mgrid[0:h, 0:w].astype("float64")
    da = xr.DataArray(
        np.stack([cols + 0.5, rows + 0.5]),
        dims=("band", "y", "x"),
        coords={"band": [1, 2], "y": like["y"].values, "x": like["x"].values},
    )
    return da.rio.write_crs(like.rio.crs).rio.write_transform(like.rio.transform())


@pytest.mark.parametrize("threshold", [GDAL_DEFAULT, 0.5])
def test_sampled_positions_are_within_the_threshold(rgb, threshold) -> None:
    """Bilinear on a linear ramp returns the sampled source position itself (away from the
    source edge), so position errors are read directly, in source pixels."""
    da = _ramp(rgb)
    h, w = da.sizes["y"], da.sizes["x"]
    exact = warp_array(warp_spec(da, DST, resampling="bilinear"), da.values)
    whole = warp_array(
        warp_spec(da, DST, resampling="bilinear", error_threshold=threshold), da.values
    )
    inner = (exact[0] > 2) & (exact[0] < w - 2) & (exact[1] > 2) & (exact[1] < h - 2)

    def shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.maximum(np.abs(a[0] - b[0]), np.abs(a[1] - b[1]))[inner]

    to_exact = shift(whole, exact)
    assert 0.5 * threshold < to_exact.max() <= threshold  # measured 0.898 x threshold
    for chunks in (64, 100, 128):
        chunked = pipeline.reproject(
            da, DST, resampling="bilinear", error_threshold=threshold, chunks=chunks
        ).values
        between = shift(chunked, whole)
        assert np.count_nonzero(between) > 0
        # Each is within the threshold of the exact position, so 2x bounds the difference;
        # measured: at most 0.898 x threshold.
        assert between.max() <= 2 * threshold, (chunks, between.max())
        assert shift(chunked, exact).max() <= threshold


def test_nearest_picks_a_neighbouring_pixel_at_most(rgb) -> None:
    da = _ramp(rgb)
    whole = warp_array(
        warp_spec(da, DST, resampling="nearest", error_threshold=GDAL_DEFAULT), da.values
    )
    chunked = pipeline.reproject(
        da, DST, resampling="nearest", error_threshold=GDAL_DEFAULT, chunks=128
    ).values
    both = ~np.isnan(whole[0]) & ~np.isnan(chunked[0])
    step = np.abs(chunked - whole)[:, both]
    assert step.max() == 1.0 and set(np.unique(step)) <= {0.0, 1.0}


# --- validation and CLI --------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-0.125, -1, math.nan, math.inf, "lots"])
def test_invalid_thresholds_raise_one_line_reproject_errors(rgb, tmp_path, bad) -> None:
    da = pipeline.open_raster(rgb)
    for call in (
        lambda: pipeline.reproject(da, DST, error_threshold=bad),
        lambda: warp_spec(da, DST, error_threshold=bad),
        lambda: plan_batch([str(rgb)], tmp_path / "out", DST, error_threshold=bad),
    ):
        with pytest.raises(ReprojectError, match="error_threshold") as info:
            call()
        assert "\n" not in str(info.value)


def test_cli_reproject_et(rgb, reference, tmp_path) -> None:
    out = tmp_path / "out.tif"
    args = [str(rgb), str(out), "--dst-crs", DST, "--resampling", "bilinear", "--et", "0.125"]
    result = CliRunner().invoke(group, ["reproject", *args, *_CLUSTER], obj={})
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as ds:  # one default chunk: the whole-tile warp
        np.testing.assert_array_equal(ds.read(), reference["bilinear"])
    for bad in ("-1", "nan"):
        result = CliRunner().invoke(
            group, ["reproject", str(rgb), str(tmp_path / "x.tif"), "--dst-crs", DST, "--et", bad]
        )
        assert result.exit_code == 2 and "must be >= 0" in result.output


def test_cli_batch_et(rgb, reference, tmp_path) -> None:
    src = tmp_path / "in" / "rgb.tif"
    src.parent.mkdir()
    shutil.copyfile(rgb, src)
    args = ["batch", str(src.parent), "-o", str(tmp_path / "out"), "--dst-crs", DST]
    result = CliRunner().invoke(group, [*args, "--error-threshold", "0.125", *_CLUSTER], obj={})
    assert result.exit_code == 0, result.output
    assert "1 done" in result.output
    with rasterio.open(tmp_path / "out" / "rgb_3857.tif") as ds:
        np.testing.assert_array_equal(ds.read(), reference["nearest"])
    result = CliRunner().invoke(group, [*args, "--et", "-0.5"], obj={})
    assert result.exit_code == 2 and "must be >= 0" in result.output
