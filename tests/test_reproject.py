"""Lazy reprojection: chunked results equal the whole-array GDAL warp, pixel for pixel.

The reference is always the same warp applied to the whole in-memory source in one go
(`warp_array(warp_spec(...), values)`): "the whole-array GDAL warp with the same options".
"""

from __future__ import annotations

import dask
import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform

import pipeline
from pipeline.errors import ChunkingError, CRSInputError, ReprojectError
from pipeline.testing import write_synthetic_raster
from pipeline.warp.reproject import reproject, warp_spec
from tests.conftest import (
    ALL_METHODS,
    UTM_30M,
    check_equal,
    differing,
    raise_if_dask_computes,
    synthetic_da,
    whole_warp,
)

#: Every method but ``sum``, whose GDAL 3.10 kernel is itself chunk-dependent (see below).
EXACT = [m for m in ALL_METHODS if m != "sum"]
SOME = ["nearest", "bilinear", "cubic", "lanczos", "average", "mode", "rms"]


@pytest.fixture(autouse=True)
def _threads():
    with dask.config.set(scheduler="threads"):
        yield


def _noisy_float(seed: int = 0, shape: tuple[int, int, int] = (2, 300, 257)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.normal(100, 20, shape)
    data[:, 40:90, 30:100] = -9999.0
    data[:, 200:, 200:] = -9999.0
    return data


# --- chunked == whole, real rasters ----------------------------------------------------------


#: Odd chunkings with 1-pixel-wide edge chunks (RGB.byte.tif is 736 x 803 in EPSG:3857 and
#: 696 x 835 in EPSG:4326 by default).
ODD_CHUNKS = {
    "EPSG:3857": ((1, 100, 270, 364, 1), (1, 100, 350, 351, 1)),
    "EPSG:4326": ((1, 100, 300, 294, 1), (1, 100, 367, 366, 1)),
}


@pytest.mark.parametrize("dst_crs", ["EPSG:3857", "EPSG:4326"])
@pytest.mark.parametrize("method", EXACT)
def test_rgb_in_odd_chunks_with_one_pixel_edges(shared_data, method, dst_crs) -> None:
    da = pipeline.open_raster(shared_data / "RGB.byte.tif")
    check_equal(da, dst_crs, ODD_CHUNKS[dst_crs], resampling=method)


@pytest.mark.parametrize("method", ["nearest", "bilinear"])
def test_rgb_in_64_pixel_chunks(shared_data, method) -> None:
    """The case the issue measured: 2% (nearest) and 80% (bilinear) off with rasterio's warps."""
    da = pipeline.open_raster(shared_data / "RGB.byte.tif")
    check_equal(da, "EPSG:3857", 64, resampling=method)


@pytest.mark.parametrize("method", EXACT)
def test_whole_world_to_web_mercator(shared_data, method) -> None:
    da = pipeline.open_raster(shared_data / "world.rgb.tif")
    out = check_equal(da, "EPSG:3857", (64, 100), resampling=method)
    assert out.shape == (3, 400, 400)


@pytest.mark.parametrize("method", ["nearest", "bilinear", "cubic", "average", "mode"])
def test_shade_to_wgs84(shared_data, method) -> None:
    da = pipeline.open_raster(shared_data / "shade.tif")
    check_equal(da, "EPSG:4326", 300, resampling=method)


@pytest.mark.parametrize("method", EXACT)
def test_float_nan_in_one_pixel_chunks(shared_data, method) -> None:
    da = pipeline.open_raster(shared_data / "float_nan.tif").rio.write_crs("EPSG:3857")
    out = check_equal(da, "EPSG:4326", 1, resampling=method)
    assert out.dtype == np.float32 and np.isfinite(out).any()
    if method == "nearest":  # a south-up source comes out north-up, NaN nodata kept
        np.testing.assert_array_equal(out[0], da.values[0][::-1])


@pytest.mark.parametrize("method", ["nearest", "bilinear", "average"])
def test_all_nodata_stays_all_nodata(shared_data, method) -> None:
    da = pipeline.open_raster(shared_data / "all-nodata.tif")
    out = check_equal(da, "EPSG:4326", 100, resampling=method)
    assert (out == 0).all()


@pytest.mark.parametrize("method", SOME)
@pytest.mark.parametrize("resolution", [17.0, 90.0])
def test_same_crs_up_and_downsampling(method, resolution) -> None:
    da = synthetic_da(_noisy_float(0, (1, 160, 140)), UTM_30M, nodata=-9999.0, chunks=50)
    chunks = ((1, *(37,) * 20), (41,) * 20)
    spec = warp_spec(da, "EPSG:32618", resolution=resolution)
    height, width = spec.dst.shape
    chunks = (_fit(chunks[0], height), _fit(chunks[1], width))
    check_equal(da, "EPSG:32618", chunks, resolution=resolution, resampling=method)


def _fit(chunks: tuple[int, ...], size: int) -> tuple[int, ...]:
    """Cut a chunk list to sum to ``size``."""
    out, total = [], 0
    for c in chunks:
        if total + c >= size:
            break
        out.append(c)
        total += c
    return (*out, size - total)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(ys=[1], xs=[101], method="lanczos")  # found by hypothesis: GDAL's unmasked kernels
@given(
    ys=st.lists(st.integers(1, 120), min_size=1, max_size=6),
    xs=st.lists(st.integers(1, 120), min_size=1, max_size=6),
    method=st.sampled_from(["nearest", "bilinear", "lanczos", "average", "mode"]),
)
def test_any_chunking_gives_the_same_pixels(ys, xs, method) -> None:
    da = synthetic_da(_noisy_float(1, (1, 120, 110)), UTM_30M, nodata=-9999.0, chunks=40)
    spec = warp_spec(da, "EPSG:3857", resolution=41.0)
    height, width = spec.dst.shape
    chunks = (_fit((*ys, height), height), _fit((*xs, width), width))
    with dask.config.set(scheduler="threads"):
        check_equal(da, "EPSG:3857", chunks, resolution=41.0, resampling=method)


# --- geometry against an independent reference -----------------------------------------------


def _expected_source_positions(out: xr.DataArray, src_transform: Affine, src_crs: str):
    """Source pixel coordinates of every destination pixel centre, by pyproj."""
    xx, yy = np.meshgrid(out.x.values, out.y.values)
    t = Transformer.from_crs(out.rio.crs.to_wkt(), src_crs, always_xy=True)
    sx, sy = t.transform(xx, yy)
    inv = ~src_transform
    return inv.a * sx + inv.b * sy + inv.c, inv.d * sx + inv.e * sy + inv.f


def test_nearest_samples_the_geometrically_expected_pixel() -> None:
    height, width = 200, 150
    data = np.arange(height * width, dtype="uint32").reshape(1, height, width)
    da = synthetic_da(data, UTM_30M, chunks=50)
    fill = np.iinfo("uint32").max
    out = reproject(da, "EPSG:3857", chunks=37, dst_nodata=fill).compute()
    c, r = _expected_source_positions(out, UTM_30M, "EPSG:32618")
    value = out.values[0]
    clear = (np.abs(c - np.round(c)) > 1e-6) & (np.abs(r - np.round(r)) > 1e-6)
    inside = (c >= 0) & (c < width) & (r >= 0) & (r < height) & clear
    outside = ((c < 0) | (c >= width) | (r < 0) | (r >= height)) & clear
    assert inside.sum() > 0.8 * value.size
    rows, cols = np.divmod(value[inside].astype(np.int64), width)
    np.testing.assert_array_equal(rows, np.floor(r[inside]).astype(np.int64))
    np.testing.assert_array_equal(cols, np.floor(c[inside]).astype(np.int64))
    assert (value[outside] == fill).all()


def test_bilinear_reproduces_a_linear_ramp_at_the_expected_position() -> None:
    height, width = 120, 100
    rows, cols = np.mgrid[0:height, 0:width]
    data = (rows * 1000.0 + cols)[None].astype("float64")
    da = synthetic_da(data, UTM_30M, chunks=33)
    out = reproject(da, "EPSG:3857", chunks=29, resampling="bilinear", error_threshold=0).compute()
    c, r = _expected_source_positions(out, UTM_30M, "EPSG:32618")
    interior = (c > 1) & (c < width - 1) & (r > 1) & (r < height - 1)
    expected = (r - 0.5) * 1000.0 + (c - 0.5)
    np.testing.assert_allclose(out.values[0][interior], expected[interior], atol=1e-6)
    assert interior.sum() > 0.8 * interior.size


def test_output_grid_is_calculate_default_transforms(shared_data) -> None:
    da = pipeline.open_raster(shared_data / "RGB.byte.tif")
    out = reproject(da, "EPSG:3857")
    with rasterio.open(shared_data / "RGB.byte.tif") as ds:
        transform, width, height = calculate_default_transform(
            ds.crs, "EPSG:3857", ds.width, ds.height, *ds.bounds
        )
    assert out.rio.transform() == transform
    assert (out.sizes["y"], out.sizes["x"]) == (height, width)
    assert out.rio.crs == rasterio.crs.CRS.from_epsg(3857)
    np.testing.assert_allclose(out.x.values[:2], transform.c + transform.a * np.array([0.5, 1.5]))
    np.testing.assert_allclose(out.y.values[:2], transform.f + transform.e * np.array([0.5, 1.5]))


# --- laziness, and which source the graph reads ----------------------------------------------


def test_open_reproject_and_kernel_stay_lazy(shared_data) -> None:
    with raise_if_dask_computes():
        da = pipeline.open_raster(shared_data / "RGB.byte.tif")
        out = reproject(da, "EPSG:3857", resampling="bilinear", chunks=128)
        reversed_ = pipeline.apply_kernel(da, "reverse-bands")
        out2 = reproject(reversed_, "EPSG:4326", chunks=256)
    assert out.data.name.startswith("pipeline-reproject-")
    assert out2.data.name.startswith("pipeline-reproject-")
    assert out.data.name == reproject(da, "EPSG:3857", resampling="bilinear", chunks=128).data.name
    assert out.data.name != reproject(da, "EPSG:3857", chunks=128).data.name


def test_kernels_and_reprojection_compose_in_one_graph() -> None:
    data = (np.arange(3 * 40 * 50) % 251).reshape(3, 40, 50).astype("uint8")
    da = synthetic_da(data, UTM_30M, chunks=16)
    kernel_out = pipeline.apply_kernel(da, "reverse-bands")
    out = reproject(kernel_out, "EPSG:3857", chunks=17)
    layers = set(out.data.dask.layers)
    assert any(name.startswith("pipeline-reverse-bands-") for name in layers)
    direct = reproject(da, "EPSG:3857", chunks=17).values
    np.testing.assert_array_equal(out.values, direct[::-1])


def test_direct_reads_only_for_the_untouched_opened_array(shared_data) -> None:
    da = pipeline.open_raster(shared_data / "RGB.byte.tif")
    direct = reproject(da, "EPSG:3857", chunks=128).values
    for derived in (da + 0, da.chunk({"y": 100}), pipeline.apply_kernel(da, "cast", dtype="uint8")):
        out = reproject(derived, "EPSG:3857", chunks=128)
        assert out.data.dask.dependencies[out.data.name] == {derived.data.name}
        np.testing.assert_array_equal(out.values, direct)
    persisted = da.persist(scheduler="threads")  # same layer name, chunks in memory
    out = reproject(persisted, "EPSG:3857", chunks=128)
    assert out.data.dask.dependencies[out.data.name] == {persisted.data.name}
    np.testing.assert_array_equal(out.values, direct)
    sliced = da[:, 1:, :]
    out = reproject(sliced, "EPSG:3857", chunks=128)
    assert out.data.dask.dependencies[out.data.name] == {sliced.data.name}


def test_a_changed_file_is_not_read_silently(tmp_path) -> None:
    path = tmp_path / "in.tif"
    data = (np.arange(3 * 64 * 80) % 251).reshape(3, 64, 80).astype("uint8")
    write_synthetic_raster(path, height=64, width=80, block=32, data=data)
    da = pipeline.open_raster(path)
    out = reproject(da, "EPSG:3857", chunks=32)
    before = out.values
    write_synthetic_raster(path, height=64, width=80, block=32, data=data[::-1].copy())
    again = reproject(pipeline.open_raster(path), "EPSG:3857", chunks=32)
    assert again.data.name != out.data.name  # the new file is a new graph
    np.testing.assert_array_equal(again.values, before[::-1])


# --- metadata, nodata, dtypes ----------------------------------------------------------------


def test_metadata_is_kept_and_georeferencing_rewritten(shared_data) -> None:
    da = pipeline.open_raster(shared_data / "all-nodata.tif")
    out = reproject(da, "EPSG:4326", chunks=256)
    assert out.dims == ("band", "y", "x")
    assert out.attrs["long_name"] == ("blue", "green", "red", "nir")
    assert out.attrs["TIFFTAG_DATETIME"] == da.attrs["TIFFTAG_DATETIME"]
    assert out.rio.nodata == 0 and out.rio.crs == rasterio.crs.CRS.from_epsg(4326)
    assert out.encoding["source"] == da.encoding["source"]
    assert list(out.band.values) == [1, 2, 3, 4]
    rgb = reproject(pipeline.open_raster(shared_data / "RGB.byte.tif"), "EPSG:3857")
    assert not any(k.startswith("STATISTICS_") for k in rgb.attrs)


def test_written_output_matches_the_lazy_result(shared_data, tmp_path) -> None:
    da = pipeline.open_raster(shared_data / "RGB.byte.tif")
    out = reproject(da, "EPSG:3857", resampling="bilinear", chunks=256)
    path = pipeline.write_raster(out, tmp_path / "out.tif")
    with rasterio.open(path) as ds:
        assert ds.crs == rasterio.crs.CRS.from_epsg(3857)
        assert ds.transform == out.rio.transform() and ds.nodata == 0
        np.testing.assert_array_equal(ds.read(), whole_warp(da, "EPSG:3857", resampling="bilinear"))


@pytest.mark.parametrize("method", ["bilinear", "cubic", "lanczos", "average"])
def test_source_nodata_never_bleeds_into_valid_pixels(method) -> None:
    rng = np.random.default_rng(3)
    data = rng.uniform(0.0, 1.0, (1, 120, 100))
    data[:, 30:60, 20:70] = -9999.0
    data[:, :, 90:] = -9999.0
    da = synthetic_da(data, UTM_30M, nodata=-9999.0, chunks=32)
    out = check_equal(da, "EPSG:3857", 27, resampling=method)
    valid = out[out != -9999.0]
    assert valid.size > 0.5 * out.size
    assert valid.min() > -0.5 and valid.max() < 1.5  # a -9999 tap would pull values far down


def test_floats_without_nodata_get_nan() -> None:
    data = np.ones((1, 30, 30), dtype="float32")
    data[0, 10, 10] = np.nan
    da = synthetic_da(data, UTM_30M, chunks=16)
    out = check_equal(da, "EPSG:3857", 13, resampling="bilinear")
    assert np.isnan(reproject(da, "EPSG:3857").rio.nodata)
    clean = synthetic_da(np.ones((1, 30, 30), dtype="float32"), UTM_30M, chunks=16)
    expected = reproject(clean, "EPSG:3857", chunks=13, resampling="bilinear").values
    # the NaN pixel is nodata, not data: at most the one pixel centred on it is nodata (as
    # data, NaN would spread to the ~4 pixels whose bilinear taps touch it)
    extra = np.isnan(out) & ~np.isnan(expected)
    assert extra.sum() <= 1 and not (np.isnan(expected) & ~np.isnan(out)).any()
    np.testing.assert_allclose(out[np.isfinite(out)], 1.0)


def test_int8_and_bool_rasters() -> None:
    signed = (np.arange(60 * 50) % 200 - 100).astype("int8").reshape(1, 60, 50)
    signed[0, 20:30, 10:40] = -128
    da = synthetic_da(signed, UTM_30M, nodata=-128, chunks=20)
    out = check_equal(da, "EPSG:3857", 23, resampling="bilinear")
    assert out.dtype == np.int8 and (out == -128).any() and out.max() > 50 and out.min() < -50
    mask = (np.indices((60, 50)).sum(axis=0) % 7 == 0)[None]
    da = synthetic_da(mask, UTM_30M, chunks=20)
    lazy = reproject(da, "EPSG:3857", chunks=23)
    assert lazy.dtype == bool and lazy.rio.nodata is None
    out = check_equal(da, "EPSG:3857", 23)
    assert out.dtype == bool and out.any() and not out.all()


def test_dst_nodata_override_and_validation(shared_data) -> None:
    da = pipeline.open_raster(shared_data / "RGB.byte.tif")
    out = reproject(da, "EPSG:3857", dst_nodata=255, chunks=200)
    assert out.rio.nodata == 255
    values = out.values
    assert (values == 255).any()
    assert differing(values, whole_warp(da, "EPSG:3857", dst_nodata=255)) == 0
    with pytest.raises(ReprojectError, match="does not fit"):
        reproject(da, "EPSG:3857", dst_nodata=-1)
    with pytest.raises(ReprojectError, match="does not fit"):
        reproject(da, "EPSG:3857", dst_nodata=float("nan"))


# --- errors ----------------------------------------------------------------------------------


def test_rotated_raster_without_crs_is_refused_in_one_line(shared_data) -> None:
    da = pipeline.open_raster(shared_data / "rotated.tif")
    with pytest.raises(CRSInputError) as info:
        reproject(da, "EPSG:3857")
    message = str(info.value)
    assert "rotated.tif" in message and "no CRS" in message and "\n" not in message


def test_bad_arguments_are_refused(shared_data) -> None:
    da = pipeline.open_raster(shared_data / "byte.tif")
    with pytest.raises(ReprojectError, match="unknown resampling 'gauss'"):
        reproject(da, "EPSG:4326", resampling="gauss")
    with pytest.raises(ReprojectError, match="unknown resampling"):
        reproject(da, "EPSG:4326", resampling=Resampling.gauss)
    with pytest.raises(CRSInputError, match="ambiguous"):
        reproject(da, "Lambert")
    with pytest.raises(ChunkingError):
        reproject(da, "EPSG:4326", chunks=0)
    with pytest.raises(ChunkingError, match="sum to"):
        reproject(da, "EPSG:4326", chunks=((1, 2), (3, 4)))
    with pytest.raises(ReprojectError, match="dims"):
        reproject(da.transpose("band", "x", "y"), "EPSG:4326")
    assert reproject(da, "EPSG:4326", resampling=Resampling.cubic).data.name
