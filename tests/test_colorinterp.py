"""Band colour interpretation (RGB order, alpha) reaches the outputs of reproject and batch."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

import pipeline
from pipeline.batch import TileOptions, _reproject_tile, _warp_tile_direct
from pipeline.batch_plan import TileJob
from pipeline.io.cog import validate_cog
from pipeline.testing import write_synthetic_raster
from pipeline.warp.spec import WarpOptions

#: A uint8 false-colour composite (NIR, red, green): GDAL's default for 3 uint8 bands is RGB.
FALSE_COLOUR = (ColorInterp.undefined, ColorInterp.red, ColorInterp.green)


@pytest.fixture
def false_colour(tmp_path):
    data = np.random.default_rng(0).integers(1, 255, (3, 150, 200), dtype=np.uint8)
    path = write_synthetic_raster(
        tmp_path / "nir-red-green.tif", block=128, compress=None, data=data
    )
    with rasterio.open(path, "r+") as ds:
        ds.colorinterp = FALSE_COLOUR
    return path


def _interp(path) -> tuple[ColorInterp, ...]:
    with rasterio.open(path) as ds:
        return tuple(ds.colorinterp)


def test_reprojected_gtiff_and_cog_keep_band_order_and_alpha(shared_data, tmp_path) -> None:
    src = shared_data / "RGBA.uint16.tif"  # blue, green, red, alpha
    da = pipeline.open_raster(src)
    out = pipeline.reproject(da, "EPSG:4326")
    gtiff = pipeline.write_raster(out, tmp_path / "out.tif")
    cog = pipeline.write_raster(out, tmp_path / "out-cog.tif", driver="COG")
    expected = _interp(src)
    assert ColorInterp.alpha in expected and expected[0] != ColorInterp.gray
    for path in (gtiff, cog):
        assert _interp(path) == expected
        with rasterio.open(path) as ds:
            np.testing.assert_array_equal(ds.read(), out.values)  # values untouched
    assert validate_cog(cog).valid
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out-cog.tif", "out.tif"]  # no .aux.xml


def test_a_uint8_false_colour_image_is_not_relabelled_rgb(false_colour, tmp_path) -> None:
    out = pipeline.reproject(pipeline.open_raster(false_colour), "EPSG:3857")
    assert _interp(pipeline.write_raster(out, tmp_path / "out.tif")) == FALSE_COLOUR


def test_kernels_and_band_subsets_drop_what_no_longer_fits(false_colour, tmp_path) -> None:
    da = pipeline.open_raster(false_colour)
    rescaled = pipeline.apply_kernel(da, "rescale", in_min=0, in_max=255, dtype="uint8")
    assert "colorinterp" not in rescaled.encoding
    # A kernel's output gets GDAL's default for its layout (RGB for 3 uint8 bands).
    assert _interp(pipeline.write_raster(rescaled, tmp_path / "k.tif"))[0] == ColorInterp.red
    two = da.isel(band=[0, 1])  # xarray keeps the 3-band encoding: it must not be written
    assert _interp(pipeline.write_raster(two, tmp_path / "two.tif")) == (
        ColorInterp.gray,
        ColorInterp.undefined,
    )
    red = pipeline.open_raster(false_colour, bands=[2])
    assert red.encoding["colorinterp"] == ("red",)
    assert _interp(pipeline.write_raster(red, tmp_path / "red.tif")) == (ColorInterp.red,)


def test_both_batch_tile_paths_keep_colour_interpretation(shared_data, tmp_path) -> None:
    src = shared_data / "RGBA.uint16.tif"
    opts = TileOptions("EPSG:4326", WarpOptions(resampling="nearest"))
    direct = TileJob(str(src), str(tmp_path / "direct.tif"))
    chunked = TileJob(str(src), str(tmp_path / "chunked.tif"))
    _warp_tile_direct(direct, opts, overwrite=False)
    _reproject_tile(chunked, opts, overwrite=False)
    for job in (direct, chunked):
        assert _interp(job.output) == _interp(src)
