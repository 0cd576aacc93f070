"""Pure grid maths of the reprojection: destination grid, kernel scale, source windows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.warp import aligned_target, calculate_default_transform

from pipeline.errors import CRSInputError, PipelineError, ReprojectError
from pipeline.warp import grid as warpgrid
from pipeline.warp.grid import GridSpec, Window
from tests.conftest import file_grid, utm_grid

# --- CRS input -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["EPSG:3857", 3857, "epsg:4326", "+proj=merc +datum=WGS84"])
def test_parse_crs_accepts_codes_and_proj_strings(value) -> None:
    crs = warpgrid.parse_crs(value)
    assert isinstance(crs, CRS)
    assert ProjCRS.from_wkt(crs.to_wkt()).equals(ProjCRS.from_user_input(value))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("foo", "not recognised"),
        ("EPSG:999999", "not recognised"),
        ("Lambert", "ambiguous"),
        ("", "missing"),
        ("Mercator", "not a CRS"),
    ],
)
def test_parse_crs_rejects_bad_input_in_one_line(value, reason) -> None:
    with pytest.raises(CRSInputError) as info:
        warpgrid.parse_crs(value)
    message = str(info.value)
    assert "\n" not in message
    assert reason in message and repr(value) in message
    assert "EPSG:3857" in message and "PROJ string" in message and "WKT" in message
    assert isinstance(info.value, PipelineError) and isinstance(info.value, ValueError)


# --- destination grid ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "dst_crs"),
    [("RGB.byte.tif", "EPSG:3857"), ("RGB.byte.tif", "EPSG:4326"), ("shade.tif", "EPSG:4326")],
)
def test_default_grid_is_calculate_default_transform(shared_data, name, dst_crs) -> None:
    src = file_grid(shared_data / name)
    with rasterio.open(shared_data / name) as ds:
        expected = calculate_default_transform(ds.crs, dst_crs, ds.width, ds.height, *ds.bounds)
    dst = warpgrid.destination_grid(src, dst_crs)
    assert (dst.transform, dst.width, dst.height) == expected
    assert dst.crs == CRS.from_user_input(dst_crs)


def test_resolution_and_shape_overrides_match_gdal(shared_data) -> None:
    src = file_grid(shared_data / "RGB.byte.tif")
    args = (src.crs, "EPSG:3857", src.width, src.height, *src.bounds)
    dst = warpgrid.destination_grid(src, "EPSG:3857", resolution=(500.0, 400.0))
    assert (dst.transform, dst.width, dst.height) == calculate_default_transform(
        *args, resolution=(500.0, 400.0)
    )
    dst = warpgrid.destination_grid(src, "EPSG:3857", shape=(100, 120))
    assert (dst.transform, dst.width, dst.height) == calculate_default_transform(
        *args, dst_width=120, dst_height=100
    )


def test_bounds_with_resolution_round_like_gdalwarp() -> None:
    src = utm_grid()
    dst = warpgrid.destination_grid(
        src, "EPSG:32618", bounds=(500000, 4491000, 507710, 4500000), resolution=100.0
    )
    assert dst.transform == Affine(100.0, 0, 500000, 0, -100.0, 4500000)
    assert (dst.width, dst.height) == (77, 90)  # 77.1 -> 77, 90.0 -> 90


def test_target_aligned_pixels_aligns_to_the_resolution() -> None:
    src = utm_grid()
    plain = warpgrid.destination_grid(src, "EPSG:3857", resolution=70.0)
    tap = warpgrid.destination_grid(src, "EPSG:3857", resolution=70.0, target_aligned_pixels=True)
    assert (tap.transform, tap.width, tap.height) == aligned_target(
        plain.transform, plain.width, plain.height, (70.0, 70.0)
    )
    left, bottom, right, top = tap.bounds
    for v in (left, bottom, right, top):
        assert math.isclose(v / 70.0, round(v / 70.0), abs_tol=1e-9)
    pl, pb, pr, pt = plain.bounds
    assert left <= pl and bottom <= pb and right >= pr and top >= pt


def test_conflicting_or_bad_grid_options_are_refused() -> None:
    src = utm_grid()
    with pytest.raises(ReprojectError, match="resolution or shape"):
        warpgrid.destination_grid(src, "EPSG:3857", resolution=10.0, shape=(10, 10))
    with pytest.raises(ReprojectError, match="right > left"):
        warpgrid.destination_grid(src, "EPSG:3857", bounds=(10, 0, 0, 10), resolution=1.0)
    with pytest.raises(ReprojectError, match="positive"):
        warpgrid.destination_grid(src, "EPSG:3857", resolution=-5.0)


def test_world_to_mercator_is_clamped_to_the_valid_latitudes(shared_data) -> None:
    src = file_grid(shared_data / "world.rgb.tif")
    with rasterio.open(shared_data / "world.rgb.tif") as ds:
        unclamped = calculate_default_transform(
            ds.crs, "EPSG:3857", ds.width, ds.height, *ds.bounds
        )
    # GDAL's own suggestion for +-90 degrees is unusable (a few pixels of ~850 km).
    assert unclamped[0].a > 500_000
    dst = warpgrid.destination_grid(src, "EPSG:3857")
    lat = warpgrid.MERCATOR_MAX_LATITUDE
    clamped_rows = round(src.height * 2 * lat / 180.0)
    expected = calculate_default_transform(
        src.crs, "EPSG:3857", src.width, clamped_rows, -180.0, -lat, 180.0, lat
    )
    assert (dst.transform, dst.width, dst.height) == expected
    left, bottom, right, top = dst.bounds
    half_world = 20037508.342789244
    # a square world: the top at the limit, the extent within one pixel of +-20037508 m
    assert math.isclose(top, half_world, rel_tol=1e-9)
    assert math.isclose(left, -half_world, rel_tol=1e-9)
    assert abs(bottom + half_world) < dst.transform.a and abs(right - half_world) < dst.transform.a


# --- kernel scale ----------------------------------------------------------------------------


def test_kernel_halo_grows_with_downsampling() -> None:
    assert warpgrid.kernel_halo("nearest", 1.0, 1.0) == (3, 3)
    assert warpgrid.kernel_halo("lanczos", 1.0, 2.0) == (5, 5)
    assert warpgrid.kernel_halo("lanczos", 0.25, 0.5) == (8, 14)
    assert warpgrid.kernel_halo("average", 0.1, 0.1) == (12, 12)
    with pytest.raises(ReprojectError, match="unknown resampling 'gauss'"):
        warpgrid.kernel_halo("gauss", 1.0, 1.0)


# --- source windows --------------------------------------------------------------------------


def _source_positions(src: GridSpec, dst: GridSpec, step: float = 0.5):
    """Source pixel coordinates of every half-pixel point of the destination (GDAL's OCT)."""
    rows = np.arange(0, dst.height + 1e-9, step)
    cols = np.arange(0, dst.width + 1e-9, step)
    cc, rr = np.meshgrid(cols, rows)
    xs, ys = dst.transform * (cc.ravel(), rr.ravel())
    sx, sy = rasterio.warp.transform(dst.crs, src.crs, xs, ys)
    c, r = ~src.transform * (np.asarray(sx), np.asarray(sy))
    return rows, cols, np.asarray(c).reshape(cc.shape), np.asarray(r).reshape(cc.shape)


def test_source_windows_cover_every_footprint_plus_the_halo(shared_data) -> None:
    src = file_grid(shared_data / "RGB.byte.tif")
    dst = warpgrid.destination_grid(src, "EPSG:3857")
    chunks = ((100,) * 7 + (36,), (128,) * 6 + (35,))
    halo = warpgrid.kernel_halo("cubic", *warpgrid.warp_scale(src, dst))
    windows = warpgrid.source_windows(src, dst, chunks, halo=halo)
    rows, cols, c_all, r_all = _source_positions(src, dst)
    y_edges, x_edges = np.cumsum((0, *chunks[0])), np.cumsum((0, *chunks[1]))
    for i in range(len(chunks[0])):
        for j in range(len(chunks[1])):
            win = windows[i][j]
            in_rows = (rows >= y_edges[i]) & (rows <= y_edges[i + 1])
            in_cols = (cols >= x_edges[j]) & (cols <= x_edges[j + 1])
            c, r = c_all[np.ix_(in_rows, in_cols)], r_all[np.ix_(in_rows, in_cols)]
            inside = (c > -halo[1]) & (c < src.width + halo[1])
            inside &= (r > -halo[0]) & (r < src.height + halo[0])
            if win is None:
                assert not inside.any()
                continue
            c, r = c[inside], r[inside]
            # every footprint point is at least `halo` pixels inside the window (unless the
            # window reaches the source edge) ...
            assert win.col0 == 0 or c.min() - win.col0 >= halo[1]
            assert win.row0 == 0 or r.min() - win.row0 >= halo[0]
            assert win.col1 == src.width or win.col1 - c.max() >= halo[1]
            assert win.row1 == src.height or win.row1 - r.max() >= halo[0]
            # ... and the window is no bigger than footprint + halo + one pixel each side.
            width = math.ceil(c.max()) - math.floor(c.min()) + 2 * halo[1] + 2
            height = math.ceil(r.max()) - math.floor(r.min()) + 2 * halo[0] + 2
            assert win.col1 - win.col0 <= width and win.row1 - win.row0 <= height


def test_chunks_outside_the_source_need_no_window() -> None:
    src = utm_grid(100, 100, 30.0)  # the source is destination rows/cols 300-400
    dst = warpgrid.destination_grid(
        src, "EPSG:32618", bounds=(491000, 4488000, 512000, 4509000), resolution=30.0
    )
    assert dst.shape == (700, 700)
    windows = warpgrid.source_windows(src, dst, ((100,) * 7, (100,) * 7), halo=(3, 3))
    assert windows[3][3] == Window(0, 100, 0, 100)
    assert windows[2][3] == Window(0, 3, 0, 100)  # the halo reaches into the neighbours
    assert windows[0][0] is None and windows[6][6] is None and windows[3][5] is None
    assert sum(w is not None for row in windows for w in row) == 9


def test_grid_spec_tokenizes_deterministically(shared_data) -> None:
    from dask.base import tokenize

    a, b = file_grid(shared_data / "RGB.byte.tif"), file_grid(shared_data / "RGB.byte.tif")
    assert tokenize(a) == tokenize(b)
    assert tokenize(a) != tokenize(GridSpec(a.crs, a.transform, a.width + 1, a.height))


def test_pixel_centres_follow_rioxarray() -> None:
    grid = utm_grid(3, 4)
    y, x = warpgrid.pixel_center_coords(grid)
    np.testing.assert_allclose(x, 500000 + 15 + 30 * np.arange(4))
    np.testing.assert_allclose(y, 4500000 - 15 - 30 * np.arange(3))


def test_source_pixel_coords_agree_with_gdal(shared_data) -> None:
    src = file_grid(shared_data / "RGB.byte.tif")
    dst = warpgrid.destination_grid(src, "EPSG:4326")
    cols, rows = np.array([0.5, 400.25, 834.5]), np.array([0.5, 300.75, 695.5])
    c, r = warpgrid.source_pixel_coords(src, dst, cols, rows)
    xs, ys = dst.transform * (cols, rows)
    t = Transformer.from_crs("EPSG:4326", src.crs.to_wkt(), always_xy=True)
    gc, gr = ~src.transform * t.transform(xs, ys)
    np.testing.assert_allclose(c, gc, atol=1e-6)
    np.testing.assert_allclose(r, gr, atol=1e-6)
