"""Colour tables of single-band class rasters reach the outputs of reproject and batch."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

import pipeline
from pipeline.batch import TileOptions, _reproject_tile, _warp_tile_direct
from pipeline.batch_plan import TileJob
from pipeline.io.cog import validate_cog
from pipeline.io.colormap import palette_allowed
from pipeline.testing import write_synthetic_raster
from pipeline.warp.spec import WarpOptions

PALETTE = {0: (0, 0, 0, 0), 1: (34, 139, 34, 255), 2: (65, 105, 225, 255), 3: (210, 180, 140, 255)}


@pytest.fixture
def classes(tmp_path):
    """A uint8 land-cover-like raster (classes 0-3, 0 = nodata) with a colour table."""
    rng = np.random.default_rng(0)
    data = np.repeat(np.repeat(rng.integers(0, 4, (1, 20, 30), dtype=np.uint8), 10, 1), 10, 2)
    path = write_synthetic_raster(
        tmp_path / "classes.tif", nodata=0, block=128, compress=None, data=data
    )
    with rasterio.open(path, "r+") as ds:
        ds.write_colormap(1, PALETTE)
    return path


def _table(path) -> dict:
    with rasterio.open(path) as ds:
        return ds.colormap(1)


def _has_table(path) -> bool:
    with rasterio.open(path) as ds:
        try:
            ds.colormap(1)
        except ValueError:
            return False
    return True


def test_reprojected_gtiff_and_cog_keep_the_source_colour_table(classes, tmp_path) -> None:
    da = pipeline.open_raster(classes)
    out = pipeline.reproject(da, "EPSG:3857", resampling="mode")
    gtiff = pipeline.write_raster(out, tmp_path / "out.tif")
    cog = pipeline.write_raster(out, tmp_path / "out-cog.tif", driver="COG")
    expected = _table(classes)
    assert expected[1] == PALETTE[1]
    for path in (gtiff, cog):
        assert _table(path) == expected
        with rasterio.open(path) as ds:
            assert ds.colorinterp[0] == rasterio.enums.ColorInterp.palette
            np.testing.assert_array_equal(ds.read(), out.values)  # values untouched
    assert validate_cog(cog).valid


def test_kernels_and_multi_band_outputs_get_no_colour_table(classes, tmp_path, shared_data):
    da = pipeline.open_raster(classes)
    threshold = pipeline.apply_kernel(da, "threshold", value=1)
    assert not _has_table(pipeline.write_raster(threshold, tmp_path / "threshold.tif"))
    rgb = pipeline.open_raster(shared_data / "RGB.byte.tif")
    assert "colormap" not in rgb.encoding
    assert not palette_allowed(3, "uint8") and not palette_allowed(1, "float32")


def test_both_batch_tile_paths_keep_the_colour_table(classes, tmp_path) -> None:
    opts = TileOptions("EPSG:3857", WarpOptions(resampling="nearest"))
    direct = TileJob(str(classes), str(tmp_path / "direct.tif"))
    chunked = TileJob(str(classes), str(tmp_path / "chunked.tif"))
    _warp_tile_direct(direct, opts, overwrite=False)
    _reproject_tile(chunked, opts, overwrite=False)
    for job in (direct, chunked):
        assert _table(job.output) == _table(classes)
