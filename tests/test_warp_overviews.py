"""Which overview a shrinking warp reads (gdalwarp ``-ovr AUTO``), and the overview's warp.

Pure selection and spec maths of `pipeline.warp.overviews`: no overview is read here (that is
tests/test_reproject_overviews.py). The RGB.byte.tif grid stands for its COG-like copy with
2, 4 and 8x overviews (396, 198 and 99 columns for 791): `warp_spec` depends only on the
full-resolution grid, dtype and nodata, which the copy shares.
"""

from __future__ import annotations

import pytest
from affine import Affine

import pipeline
from pipeline.warp.overviews import (
    MIN_SHRINK,
    best_overview_level,
    overview_grid,
    overview_level_for,
    overview_warp_spec,
    shrink_factor,
)
from pipeline.warp.reproject import warp_spec
from tests.conftest import file_grid


@pytest.fixture(scope="module")
def rgb(shared_data):
    """RGB.byte.tif: the full-resolution grid of its copy with overviews."""
    return shared_data / "RGB.byte.tif"


def test_best_level_is_gdalwarps_choice() -> None:
    widths = [396, 198, 99]  # RGB.byte.tif (791 wide) with 2, 4 and 8x overviews
    assert best_overview_level(8.0, 791, widths) == 2
    assert best_overview_level(100.0, 791, widths) == 2  # the coarsest there is
    assert best_overview_level(7.0, 791, widths) == 1  # 7.99 > 7 + 0.1: one level finer
    assert best_overview_level(7.95, 791, widths) == 2  # within gdalwarp's 0.1 tolerance
    assert best_overview_level(3.9, 791, widths) == 1
    assert best_overview_level(2.0, 791, widths) == 0
    assert best_overview_level(1.95, 791, widths) == 0  # gdalwarp would; our 2x gate does not
    assert best_overview_level(1.5, 791, widths) is None
    assert best_overview_level(0.5, 791, widths) is None
    assert best_overview_level(8.0, 791, []) is None
    assert best_overview_level(8.0, 791, widths, oversampling_threshold=0.5) == 1


def test_levels_are_only_considered_from_a_2x_shrink(rgb) -> None:
    da = pipeline.open_raster(rgb)
    widths = [396, 198, 99]
    near_2x = warp_spec(da, "EPSG:32618", resolution=1.95 * 300.0379266750948)
    assert 1.9 < 1 / near_2x.xscale < MIN_SHRINK
    assert overview_level_for(near_2x, 791, widths) is None
    at_2x = warp_spec(da, "EPSG:32618", resolution=2 * 300.0379266750948)
    assert overview_level_for(at_2x, 791, widths) == 0


def test_overview_warp_uses_the_overviews_scale(rgb) -> None:
    da = pipeline.open_raster(rgb)
    spec = warp_spec(da, "EPSG:32618", resolution=8 * 300.0379266750948, resampling="average")
    assert (spec.xscale, spec.yscale) == (0.125, 0.125)
    ovr = overview_warp_spec(spec, 90, 99)
    assert ovr.dst == spec.dst
    assert ovr.src.shape == (90, 99) and ovr.src.bounds == pytest.approx(spec.src.bounds)
    assert ovr.xscale == pytest.approx(1.0, abs=0.01) and ovr.yscale == pytest.approx(1.0, abs=0.01)
    assert ovr.source_extra < spec.source_extra


def test_shrink_is_taken_along_the_less_shrunk_axis() -> None:
    assert shrink_factor(0.125, 0.125) == 8.0
    assert shrink_factor(0.125, 0.25) == 4.0  # x shrinks 8x, y 4x: gdalwarp takes 4
    assert shrink_factor(0.5, 0.1) == 2.0
    assert shrink_factor(2.0, 2.0) == 0.5  # enlarging: no overview (best level needs > 1)


def test_overview_grid_keeps_the_extent_and_scales_the_pixels(shared_data) -> None:
    src = file_grid(shared_data / "RGB.byte.tif")
    assert src.shape == (718, 791)
    ovr = overview_grid(src, 90, 99)
    assert ovr.crs == src.crs and ovr.shape == (90, 99)
    a, e = src.transform.a, src.transform.e
    expected = Affine(a * 791 / 99, 0.0, src.transform.c, 0.0, e * 718 / 90, src.transform.f)
    assert ovr.transform.almost_equals(expected, precision=1e-9)
    assert ovr.bounds == pytest.approx(src.bounds, rel=1e-12)
