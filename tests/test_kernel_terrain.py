"""slope, aspect, hillshade: against per-window references, planes, cones and any chunking."""

from __future__ import annotations

import functools
import math

import dask.array
import numpy as np
import pytest
import rasterio
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

import pipeline
from pipeline.kernels.cellsize import row_cellsize
from pipeline.kernels.testing import cone, georeferenced, plane, synthetic_dem
from tests.conftest import raise_if_dask_computes
from tests.reference import window_filter
from tests.test_apply import chunkings

NODATA = -9999.0


def _horn_window(w: np.ndarray, dx: float, dy: float) -> tuple[float, float]:
    """GDAL's Horn gradient of one 3 x 3 window (row-major), NaN neighbours -> centre."""
    w = np.where(np.isnan(w), w[4], w)
    a, b, c, d, _, f, g, h, i = w
    return ((c + 2 * f + i) - (a + 2 * d + g)) / (8 * dx), ((g + 2 * h + i) - (a + 2 * b + c)) / (
        8 * dy
    )


def _reference(z: np.ndarray, what: str, dx: float, dy: float, **kw: float) -> np.ndarray:
    """Slope, aspect or hillshade of each NaN-padded 3 x 3 window, one window at a time."""
    az, alt = math.radians(kw.get("azimuth", 315.0)), math.radians(kw.get("altitude", 45.0))

    def window(w: np.ndarray) -> float:
        if np.isnan(w[4]):
            return math.nan if what != "hillshade" else 0.0
        gx, gy = _horn_window(w, dx, dy)
        if what == "slope":
            return math.degrees(math.atan(math.hypot(gx, gy)))
        if what == "aspect":  # GDAL: atan2(dy, -dx) then to a compass bearing
            if gx == 0 and gy == 0:
                return -1.0
            deg = math.degrees(math.atan2(gy, -gx))
            return (450.0 - deg if deg > 90.0 else 90.0 - deg) % 360.0
        # ESRI's form: cos(zenith) cos(slope) + sin(zenith) sin(slope) cos(azimuth - aspect)
        s = math.atan(math.hypot(gx, gy))
        aspect_math = math.atan2(gy, -gx)
        cang = math.sin(alt) * math.cos(s) + math.cos(alt) * math.sin(s) * math.cos(
            (math.pi / 2 - az) - aspect_math
        )
        return 1.0 if cang <= 0 else math.floor(1.0 + 254.0 * cang + 0.5)

    return window_filter(z, window, 3)


def _dem_with_holes(height: int = 40, width: int = 48) -> np.ndarray:
    dem = synthetic_dem(height, width, seed=3)
    dem[0, height // 4 : height // 4 + 3, width // 2 : width // 2 + 4] = NODATA  # a hole
    dem[0, 0, : width // 6 + 1] = NODATA  # on the top edge
    dem[0, -3:, -2:] = NODATA  # in a corner
    dem[0, 2 * height // 3, 2 * width // 3] = NODATA  # one isolated pixel
    return dem


def _masked(dem: np.ndarray) -> np.ndarray:
    return np.where(dem[0] == NODATA, np.nan, dem[0].astype(np.float64))


@pytest.mark.parametrize("what", ["slope", "aspect", "hillshade"])
def test_terrain_matches_the_window_reference_with_nodata_and_edges(what) -> None:
    dem = _dem_with_holes()
    da = georeferenced(dem, resolution=25.0, nodata=NODATA)
    with raise_if_dask_computes():
        out = pipeline.apply_kernel(da.chunk({"y": 16, "x": 20}), what)
    got = out.values[0]
    ref = _reference(_masked(dem), what, 25.0, 25.0)
    if what == "hillshade":
        assert out.dtype == np.uint8 and out.rio.nodata == 0
        np.testing.assert_array_equal(got == 0, dem[0] == NODATA)
        diff = np.abs(got.astype(int) - ref.astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99  # rounding ties only
    else:
        assert out.dtype == np.float32 and np.isnan(out.rio.nodata)
        np.testing.assert_array_equal(np.isnan(got), dem[0] == NODATA)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4, equal_nan=True)


def test_slope_uses_rectangular_pixel_sizes_and_z_factor() -> None:
    dem = synthetic_dem(20, 24, seed=5)
    da = georeferenced(dem, resolution=(10.0, 30.0))
    got = pipeline.apply_kernel(da, "slope", z_factor=0.3048).values[0]
    ref = _reference(dem[0].astype(np.float64) * 0.3048, "slope", 10.0, 30.0)
    np.testing.assert_allclose(got, ref, rtol=1e-5)


@pytest.mark.parametrize(("a", "b"), [(0.3, -0.4), (-1.2, 0.0), (0.0, 0.7), (2.0, 2.0)])
def test_slope_and_aspect_of_a_plane(a, b) -> None:
    da = georeferenced(plane(12, 15, a=a, b=b, res=5.0), resolution=5.0)
    slope = pipeline.apply_kernel(da, "slope").values[0]
    aspect = pipeline.apply_kernel(da, "aspect").values[0]
    expected_slope = math.degrees(math.atan(math.hypot(a, b)))
    expected_aspect = math.degrees(math.atan2(-a, -b)) % 360.0  # downhill is -(a, b)
    np.testing.assert_allclose(slope[1:-1, 1:-1], expected_slope, atol=1e-4)
    np.testing.assert_allclose(aspect[1:-1, 1:-1], expected_aspect, atol=1e-3)
    assert np.isfinite(slope).all() and (slope[0] < expected_slope).all()  # edge rule


def test_aspect_just_west_of_north_wraps_to_zero_not_360() -> None:
    # Facing north, tilted by 1e-9 towards the west: 359.99999994 degrees, 360.0 in float32.
    da = georeferenced(plane(5, 5, a=1e-9, b=-1.0), resolution=5.0)
    aspect = pipeline.apply_kernel(da, "aspect").values[0, 1:-1, 1:-1]
    assert (aspect == 0.0).all()


def test_flat_ground_has_zero_slope_and_aspect_minus_one() -> None:
    da = georeferenced(np.full((1, 6, 7), 120.0, dtype=np.float32))
    assert (pipeline.apply_kernel(da, "slope").values == 0).all()
    assert (pipeline.apply_kernel(da, "aspect").values == -1).all()


def test_slope_and_aspect_of_a_cone() -> None:
    n, res, grade = 61, 2.0, 0.5
    da = georeferenced(cone(n, n, grade=grade, res=res), resolution=res)
    slope = pipeline.apply_kernel(da, "slope").values[0]
    aspect = pipeline.apply_kernel(da, "aspect").values[0]
    yy, xx = np.mgrid[0:n, 0:n]
    east, south = xx + 0.5 - n / 2, yy + 0.5 - n / 2
    r = np.hypot(east, south)
    expected_aspect = np.degrees(np.arctan2(east, -south)) % 360  # away from the apex
    aspect_error = np.abs((aspect - expected_aspect + 180) % 360 - 180)
    slope_error = np.abs(slope - math.degrees(math.atan(grade)))
    inner = np.zeros_like(slope, dtype=bool)
    inner[1:-1, 1:-1] = True
    # Horn's 3 x 3 estimate of a curved surface improves with the distance to the apex.
    assert slope_error[inner & (r >= 5)].max() < 0.25
    assert slope_error[inner & (r >= 10)].max() < 0.06
    assert aspect_error[inner & (r >= 5)].max() < 0.12


def test_hillshade_faces_the_sun() -> None:
    # A plane rising to the south-east faces north-west: bright under the default sun (315).
    da = georeferenced(plane(8, 8, a=1.0, b=-1.0), resolution=1.0)
    lit = pipeline.apply_kernel(da, "hillshade").values[0, 1:-1, 1:-1]
    dark = pipeline.apply_kernel(da, "hillshade", azimuth=135).values[0, 1:-1, 1:-1]
    # cos(angle to the sun): sin(45) cos(54.7) + cos(45) sin(54.7) cos(0) = 0.9856 -> 251
    assert (lit == 251).all()
    assert (dark == 1).all()  # in its own shadow


def test_geographic_pixel_size_follows_each_rows_latitude() -> None:
    xres = yres = 0.001
    da = georeferenced(
        np.zeros((1, 5, 3), dtype=np.float32),
        crs="EPSG:4326",
        origin=(10.0, 60.0),
        resolution=(xres, yres),
    )
    dx, dy = row_cellsize(da.rio.transform(), da.rio.crs).rows(0, 5)
    geod = Geod(ellps="WGS84")
    for row in range(5):
        lat = 60.0 - (row + 0.5) * yres
        ex = geod.inv(10.0, lat, 10.0 + xres, lat)[2]
        ey = geod.inv(10.0, lat - yres / 2, 10.0, lat + yres / 2)[2]
        assert dx[row] == pytest.approx(ex, rel=1e-7)
        assert dy[row] == pytest.approx(ey, rel=1e-7)
    assert dx[0] < dx[-1]  # pixels narrow towards the pole


def test_slope_on_a_geographic_raster_uses_metres() -> None:
    # 1 m of rise per pixel eastwards; pixels are ~55.8 m wide at 60 degrees north.
    ny, nx, res = 9, 9, 0.001
    z = np.tile(np.arange(nx, dtype=np.float32), (ny, 1))[None]
    da = georeferenced(z, crs="EPSG:4326", origin=(10.0, 60.0), resolution=res)
    slope = pipeline.apply_kernel(da, "slope").values[0]
    dx, _ = row_cellsize(da.rio.transform(), da.rio.crs).rows(0, ny)
    expected = np.degrees(np.arctan(1.0 / dx))
    np.testing.assert_allclose(slope[1:-1, 1:-1], np.repeat(expected[1:-1, None], 7, 1), rtol=1e-5)


def test_rotated_raster_is_refused(shared_data) -> None:
    da = pipeline.open_raster(shared_data / "rotated.tif")
    with pytest.raises(pipeline.KernelError, match="rotated or sheared"):
        pipeline.apply_kernel(da, "slope")


def test_real_shade_tif_nodata_stays_nodata(shared_data) -> None:
    path = shared_data / "shade.tif"
    da = pipeline.open_raster(path)
    with rasterio.open(path) as ds:
        raw = ds.read(1)
    assert ds.nodata == 255 and (raw == 255).any() and (raw != 255).any()
    # The file itself is a flat 0/255 mask: slope 0 where valid, NaN where nodata.
    slope = pipeline.apply_kernel(da, "slope").compute(scheduler="threads").values[0]
    np.testing.assert_array_equal(np.isnan(slope), raw == 255)
    assert (slope[raw != 255] == 0).all()
    # A DEM laid under its valid pixels, with the file's georeferencing and chunks.
    dem = np.where(raw == 255, np.float32(255), synthetic_dem(*raw.shape, seed=1)[0])
    dem_da = da.copy(data=dask.array.from_array(dem[None], chunks=da.data.chunks))
    dem_da = dem_da.rio.write_nodata(255.0, encoded=False)
    slope = pipeline.apply_kernel(dem_da, "slope").compute(scheduler="threads").values[0]
    np.testing.assert_array_equal(np.isnan(slope), raw == 255)
    window = (slice(600, 660), slice(0, 70))  # crosses valid/nodata borders and the left edge
    xres, yres = (abs(r) for r in dem_da.rio.resolution())
    ref = _reference(np.where(raw == 255, np.nan, dem)[window], "slope", xres, yres)
    rows, cols = slice(1, -1), slice(0, -1)  # the window's cut sides lack outer neighbours
    np.testing.assert_allclose(slope[window][rows, cols], ref[rows, cols], rtol=1e-5)


@functools.cache
def _whole(kernel: str) -> np.ndarray:
    return pipeline.apply_kernel(_small_dem(), kernel).values


@functools.cache
def _small_dem() -> xr.DataArray:
    return georeferenced(_dem_with_holes(11, 13), resolution=30.0, nodata=NODATA)


@settings(max_examples=20, deadline=None)
@given(ys=chunkings(11), xs=chunkings(13), kernel=st.sampled_from(["slope", "aspect", "hillshade"]))
def test_any_chunking_gives_exactly_the_whole_array_result(ys, xs, kernel) -> None:
    out = pipeline.apply_kernel(_small_dem().chunk({"y": ys, "x": xs}), kernel)
    np.testing.assert_array_equal(out.compute(scheduler="sync").values, _whole(kernel))
