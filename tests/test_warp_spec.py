"""What defines a warp: `WarpOptions` validated once, resolved by `make_spec` into a `WarpSpec`.

Expected values are written out by hand from the rules (GDAL's types, the dtype ranges, the
kernel radii of GDAL's warper), not read back from the module under test.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.enums import Resampling

from pipeline.errors import ReprojectError
from pipeline.warp import grid as warpgrid
from pipeline.warp.spec import WarpOptions, WarpSpec, make_spec
from tests.conftest import utm_grid

SAME_CRS = "EPSG:32618"


def _spec(dtype="uint8", count=1, file_nodata=None, *, dst_crs=SAME_CRS, source="in.tif", **kw):
    """`make_spec` for a 300 x 257 30 m UTM source and ``WarpOptions(**kw)``."""
    return make_spec(
        utm_grid(), np.dtype(dtype), count, file_nodata, dst_crs, WarpOptions(**kw), source=source
    )


# --- WarpOptions: validation and normalisation ---------------------------------------------


def test_defaults_are_gdalwarps() -> None:
    opts = WarpOptions()
    assert opts.resampling == "nearest"
    assert opts.error_threshold == 0.125 and isinstance(opts.error_threshold, float)
    assert (opts.resolution, opts.bounds, opts.shape) == (None, None, None)
    assert (opts.src_nodata, opts.dst_nodata, opts.target_aligned_pixels) == (None, None, False)


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("bilinear", "bilinear"),
        ("Bilinear", "bilinear"),
        ("CUBIC_SPLINE", "cubic_spline"),
        (Resampling.lanczos, "lanczos"),
        (Resampling.q3, "q3"),
        ("rms", "rms"),
    ],
)
def test_resampling_names_are_normalised(given, name) -> None:
    assert WarpOptions(resampling=given).resampling == name


@pytest.mark.parametrize("bad", ["gauss", Resampling.gauss, "", "near"])
def test_unknown_resampling_is_refused_in_one_line(bad) -> None:
    with pytest.raises(ReprojectError, match="unknown resampling") as info:
        WarpOptions(resampling=bad)
    message = str(info.value)
    assert "\n" not in message and "nearest" in message and "lanczos" in message


@pytest.mark.parametrize("bad", [-0.125, -1, math.nan, math.inf, -math.inf, "lots", None, [1]])
def test_bad_error_thresholds_are_refused_in_one_line(bad) -> None:
    with pytest.raises(ReprojectError, match="error_threshold") as info:
        WarpOptions(error_threshold=bad)
    message = str(info.value)
    assert "\n" not in message and repr(bad) in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("given", "value"), [(0, 0.0), (1, 1.0), ("0.5", 0.5), (2.25, 2.25)])
def test_error_threshold_becomes_a_float(given, value) -> None:
    threshold = WarpOptions(error_threshold=given).error_threshold
    assert threshold == value and type(threshold) is float


def test_sequences_become_tuples_and_options_are_frozen_and_hashable() -> None:
    opts = WarpOptions(resolution=[10.0, 20.0], bounds=[0, 1, 2, 3], shape=[4, 5])
    assert opts.resolution == (10.0, 20.0) and isinstance(opts.resolution, tuple)
    assert opts.bounds == (0, 1, 2, 3) and isinstance(opts.bounds, tuple)
    assert opts.shape == (4, 5) and isinstance(opts.shape, tuple)
    assert WarpOptions(resolution=30.0).resolution == 30.0  # one number stays one number
    same = WarpOptions(resolution=(10.0, 20.0), bounds=(0, 1, 2, 3), shape=(4, 5))
    assert opts == same and hash(opts) == hash(same) and len({opts, same}) == 1
    assert hash(opts) != hash(dataclasses.replace(same, resampling="cubic"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.resampling = "cubic"  # type: ignore[misc]


# --- make_spec: dtype, nodata, grid, scales ------------------------------------------------


def test_bool_is_warped_as_uint8_with_nodata_0_or_1() -> None:
    spec = _spec("bool")
    assert spec.dtype == "uint8" and spec.src_nodata is None and spec.dst_nodata is None
    assert _spec("bool", dst_nodata=1).dst_nodata == 1.0
    with pytest.raises(ReprojectError, match="must be 0 or 1"):
        _spec("bool", dst_nodata=2)


@pytest.mark.parametrize("dtype", ["complex64", "complex128", "float16"])
def test_unsupported_dtypes_are_refused_naming_the_file(dtype) -> None:
    with pytest.raises(ReprojectError) as info:
        _spec(dtype, source="/data/scene.tif")
    message = str(info.value)
    assert message.startswith("/data/scene.tif: ") and repr(dtype) in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"]
)
def test_gdal_types_keep_their_dtype(dtype) -> None:
    assert _spec(dtype).dtype == dtype


@pytest.mark.parametrize(
    ("dtype", "options"),
    [
        ("uint8", {"dst_nodata": -1}),
        ("uint8", {"dst_nodata": 256}),
        ("uint8", {"src_nodata": 1.5}),
        ("uint8", {"dst_nodata": math.nan}),
        ("int16", {"src_nodata": 40000}),
        ("uint16", {"dst_nodata": math.inf}),
        pytest.param(
            "float32",
            {"dst_nodata": 1e39},
            marks=pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
        ),
    ],
)
def test_nodata_outside_the_dtype_is_refused(dtype, options) -> None:
    (label,) = options
    with pytest.raises(ReprojectError, match="does not fit") as info:
        _spec(dtype, **options)
    message = str(info.value)
    assert message.startswith("in.tif: ") and label in message and repr(dtype) in message


def test_nodata_defaults() -> None:
    # the file's nodata is the source nodata, and the destination's unless overridden
    spec = _spec("uint8", file_nodata=7)
    assert (spec.src_nodata, spec.dst_nodata) == (7.0, 7.0)
    assert _spec("uint8", file_nodata=7, dst_nodata=0).dst_nodata == 0.0
    assert _spec("uint8", file_nodata=7, src_nodata=9).dst_nodata == 9.0
    # integers without nodata: none either side (the fill is 0)
    assert (_spec("int16").src_nodata, _spec("int16").dst_nodata) == (None, None)
    # floats without nodata: NaN either side
    spec = _spec("float32")
    assert math.isnan(spec.src_nodata) and math.isnan(spec.dst_nodata)
    assert _spec("float64", dst_nodata=-9999).dst_nodata == -9999.0
    assert isinstance(_spec("int16", file_nodata=np.int16(-5)).src_nodata, float)


def test_grid_scales_and_source_extra_follow_the_destination() -> None:
    # 30 m -> 60 m in the same CRS: half the pixels each way, kernel scale 0.5
    spec = _spec("uint8", count=3, resolution=60.0, resampling="lanczos")
    assert spec.dst.crs == CRS.from_epsg(32618) and spec.dst.shape == (150, 129)
    assert (spec.xscale, spec.yscale) == (0.5, 0.5)
    assert spec.count == 3 and spec.resampling == "lanczos"
    # lanczos radius 3 widened by 1 / 0.5, plus 2 safety pixels
    assert spec.source_extra == 3 * 2 + 2
    assert spec.error_threshold == 0.125
    west, south, east, north = spec.aoi
    assert west == pytest.approx(-75.0) and south < north and east > west


# --- WarpSpec: halo and block grid ---------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "extra"), [(0.0, 0), (0.125, 1), (1.0, 1), (1.5, 2), (2.0, 2)]
)
def test_halo_grows_by_the_ceiling_of_the_error_threshold(threshold, extra) -> None:
    # nearest at scale 1: radius 1 + 2 safety pixels; lanczos at scale 0.5: 3 x 2 + 2
    nearest = _spec(error_threshold=threshold)
    assert nearest.halo == (3 + extra, 3 + extra)
    lanczos = _spec(resolution=60.0, resampling="lanczos", error_threshold=threshold)
    assert lanczos.halo == (8 + extra, 8 + extra)
    # anisotropic: 30 m across, 90 m down (y scale 1/3)
    tall = _spec(resolution=(30.0, 90.0), resampling="cubic", error_threshold=threshold)
    assert tall.halo == (2 * 3 + 2 + extra, 2 + 2 + extra)


@pytest.mark.parametrize(
    ("width", "height", "block"),
    [(257, 300, (128, 257)), (1024, 90, (90, 1024)), (1500, 300, (128, 512))],
)
def test_block_defaults_to_the_destination_warp_block_shape(width, height, block) -> None:
    src = utm_grid(height, width)
    spec = make_spec(src, np.dtype("uint8"), 1, None, SAME_CRS, WarpOptions())
    assert spec.dst.shape == (height, width)
    assert spec.block == block == warpgrid.warp_block_shape(spec.dst)
    # an explicit block is kept; a WarpSpec built without one gets the default
    assert dataclasses.replace(spec, block=(64, 64)).block == (64, 64)
    direct = WarpSpec(src, spec.dst, "nearest", "uint8", 1, None, None, 1.0, 1.0, 3)
    assert direct.block == block
