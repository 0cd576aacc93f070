"""GDAL's warper as `pipeline.warp.engine` drives it: the warped-VRT XML, the whole-array
warp against GDAL's own references, GDAL's kernel scale, and its one chunk-dependent method.
"""

from __future__ import annotations

import dataclasses

import dask
import numpy as np
import pytest
import rasterio
from dask.base import tokenize
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

import pipeline
from pipeline.errors import PipelineWarning
from pipeline.testing import synthetic_array, write_synthetic_raster
from pipeline.warp import engine
from pipeline.warp import grid as warpgrid
from pipeline.warp.engine import warp_array, warp_window
from pipeline.warp.grid import GridSpec, Window
from pipeline.warp.reproject import reproject, warp_spec
from pipeline.warp.spec import WarpOptions, WarpSpec
from tests.conftest import (
    ALL_METHODS,
    check_equal,
    differing,
    file_grid,
    gdal_default_warp,
    utm_grid,
)

DST = "EPSG:3857"
GDAL_DEFAULT = 0.125


@pytest.fixture(autouse=True)
def _threads():
    with dask.config.set(scheduler="threads"):
        yield


@pytest.fixture
def rgb(shared_data):
    return shared_data / "RGB.byte.tif"


# --- the warped VRT's XML ---------------------------------------------------------------------


def test_default_is_gdals_threshold_and_zero_is_the_bare_exact_transformer(rgb) -> None:
    da = pipeline.open_raster(rgb)
    default = warp_spec(da, DST, resampling="bilinear")
    approx = warp_spec(da, DST, resampling="bilinear", error_threshold=GDAL_DEFAULT)
    zero = warp_spec(da, DST, resampling="bilinear", error_threshold=0)
    assert default == approx and default.error_threshold == GDAL_DEFAULT == 0.125
    assert WarpOptions().error_threshold == 0.125
    exact_xml = engine.warped_vrt_xml(zero, "/vsimem/src.vrt")
    assert "<Transformer><GenImgProjTransformer>" in exact_xml and "Approx" not in exact_xml
    approx_xml = engine.warped_vrt_xml(approx, "/vsimem/src.vrt")
    head = "<ApproxTransformer><MaxError>0.125</MaxError><BaseTransformer>"
    tail = "</BaseTransformer></ApproxTransformer>"
    assert f"<Transformer>{head}<GenImgProjTransformer>" in approx_xml
    assert f"</GenImgProjTransformer>{tail}</Transformer>" in approx_xml
    assert approx_xml.replace(head, "").replace(tail, "") == exact_xml
    # The threshold and the block grid are part of the spec's identity.
    assert tokenize(approx) != tokenize(zero) and hash(approx) != hash(zero)
    assert tokenize(dataclasses.replace(approx, error_threshold=0.0)) == tokenize(zero)
    assert tokenize(dataclasses.replace(approx, block=(64, 64))) != tokenize(approx)


# --- the whole-array warp against GDAL's own --------------------------------------------------


@pytest.fixture(scope="module")
def small_utm_file(tmp_path_factory) -> str:
    """A 3-band uint8 GeoTIFF in UTM with a nodata hole (small: the check runs per method)."""
    data = synthetic_array(3, 150, 130, seed=4)
    data[:, 40:60, 30:90] = 0
    path = tmp_path_factory.mktemp("warpedvrt") / "small.tif"
    return write_synthetic_raster(path, data=data, nodata=0, block=None, resolution=30.0)


@pytest.mark.parametrize("threshold", [0.0, 0.125])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_whole_array_warp_equals_rasterio_warped_vrt(small_utm_file, method, threshold) -> None:
    """Our warp engine vs rasterio's own WarpedVRT read in one go (same scales).

    Exact transformer against a 1e-9 pixel tolerance; the default approximate one against
    GDAL's own 0.125 (the output is narrower than 1024 columns: one block per row).
    """
    da = pipeline.open_raster(small_utm_file)
    spec = warp_spec(da, "EPSG:3857", resolution=40.0, resampling=method, error_threshold=threshold)
    assert spec.dst.width <= 1024
    with (
        rasterio.open(small_utm_file) as src,
        WarpedVRT(
            src,
            crs="EPSG:3857",
            transform=spec.dst.transform,
            width=spec.dst.width,
            height=spec.dst.height,
            resampling=Resampling[method],
            tolerance=threshold or 1e-9,
            src_nodata=0,
            nodata=0,
            XSCALE=spec.xscale,
            YSCALE=spec.yscale,
        ) as vrt,
    ):
        theirs = vrt.read()
    assert differing(warp_array(spec, da.values), theirs) == 0


def test_distance_to_gdals_plain_default_is_only_the_approximate_transformer(
    shared_data, capsys
) -> None:
    path = shared_data / "RGB.byte.tif"
    da = pipeline.open_raster(path)
    for method in ("nearest", "bilinear"):
        spec = warp_spec(da, "EPSG:3857", resampling=method, error_threshold=0)
        ours = warp_array(spec, da.values)
        plain = gdal_default_warp(da.values, spec, method, spec.src_nodata)
        valid = (ours != 0).any(axis=0) & (plain != 0).any(axis=0)
        fraction = float((ours != plain).mean())
        worst = int(np.abs(ours.astype(int) - plain.astype(int))[:, valid].max())
        with capsys.disabled():
            print(
                f"\nRGB.byte.tif -> EPSG:3857 {method}, --et 0: {fraction:.2%} of values differ "
                f"from rasterio.warp.reproject defaults, max |diff| {worst} (valid pixels)"
            )
        # our default is GDAL's: no difference at all
        default = warp_array(warp_spec(da, "EPSG:3857", resampling=method), da.values)
        assert differing(default, plain) == 0
        # the approximate transformer moves samples by < 0.125 pixel: few nearest pixels change
        assert 0 < fraction < (0.10 if method == "nearest" else 0.40)
        # ... and it is the whole difference: WarpedVRT with GDAL's default 0.125 tolerance
        # reproduces the plain warp
        with (
            rasterio.open(path) as src,
            WarpedVRT(
                src,
                crs=spec.dst.crs,
                transform=spec.dst.transform,
                width=spec.dst.width,
                height=spec.dst.height,
                resampling=Resampling[method],
                tolerance=0.125,
                warp_mem_limit=256,
            ) as vrt,
        ):
            assert differing(vrt.read(), plain) == 0


def test_gdal_sum_is_itself_chunk_dependent_before_3_12_1(shared_data) -> None:
    """Evidence for the one inexact method: GDAL's sum kernel (OSGeo/gdal#13539)."""
    da = pipeline.open_raster(shared_data / "world.rgb.tif")
    spec = warp_spec(da, "EPSG:4326", resampling="sum")  # same grid: an identity warp
    data = da.values
    whole = warp_array(spec, data)
    window = Window(100, 200, 100, 200)
    blocks = dataclasses.replace(spec, block=(100, 100))
    part = warp_window(blocks, data, Window(0, 256, 0, 512), window)
    gdal = tuple(int(p) for p in rasterio.__gdal_version__.split(".")[:3])
    if gdal < (3, 12, 1):
        assert np.array_equal(whole, data)  # one GDAL chunk: right
        assert differing(part, data[:, 100:200, 100:200]) > 0  # GDAL's own chunking: wrong
        with pytest.warns(PipelineWarning, match="13539"):
            reproject(da, "EPSG:3857", resampling="sum")
    else:
        assert differing(part, whole[:, 100:200, 100:200]) == 0
        check_equal(da, "EPSG:3857", (64, 100), resampling="sum")


def test_warp_window_checks_its_block(shared_data) -> None:
    da = pipeline.open_raster(shared_data / "byte.tif")
    spec = warp_spec(da, "EPSG:4326")
    with pytest.raises(ValueError, match="does not match"):
        warp_window(spec, da.values, Window(0, 10, 0, 10), Window(0, 1, 0, 1))


# --- XSCALE/YSCALE: GDAL's own computation ----------------------------------------------------


def _scale_cases(shared_data):
    src = utm_grid()
    yield src, warpgrid.destination_grid(src, "EPSG:3857", resolution=90.0)
    yield src, warpgrid.destination_grid(src, "EPSG:32618", resolution=90.0)  # snaps to 1/3
    yield src, warpgrid.destination_grid(src, "EPSG:3857", resolution=41.0)  # snaps to 1
    yield src, warpgrid.destination_grid(src, "EPSG:4326", resolution=0.0005)
    rgb = file_grid(shared_data / "RGB.byte.tif")
    yield rgb, warpgrid.destination_grid(rgb, "EPSG:4326")


def test_warp_scale_is_what_gdal_computes_for_the_whole_raster(shared_data, monkeypatch) -> None:
    """A whole-raster warp with our XSCALE/YSCALE equals GDAL's own choice; 0.01% off does not."""
    rng = np.random.default_rng(1)
    with_scale = engine.warp_options

    def without_scale(spec: WarpSpec) -> dict[str, str]:
        options = with_scale(spec)
        del options["XSCALE"], options["YSCALE"]
        return options

    for src, dst in _scale_cases(shared_data):
        data = rng.normal(100, 20, (1, src.height, src.width))
        xscale, yscale = warpgrid.warp_scale(src, dst)

        def spec(xs: float, ys: float, dst: GridSpec = dst, src: GridSpec = src) -> WarpSpec:
            # one block: GDAL computes its scale once, for the whole raster
            return WarpSpec(
                src, dst, "lanczos", "float64", 1, None, None, xs, ys, 20,
                error_threshold=0.0, block=dst.shape,
            )  # fmt: skip

        with monkeypatch.context() as m:
            m.setattr(engine, "warp_options", without_scale)
            gdal_choice = warp_array(spec(1.0, 1.0), data)
        ours = warp_array(spec(xscale, yscale), data)
        assert np.array_equal(ours, gdal_choice), (dst, xscale, yscale)
        if xscale < 1 or yscale < 1:
            off = warp_array(spec(xscale * 1.0001, yscale * 1.0001), data)
            assert not np.array_equal(off, gdal_choice)
