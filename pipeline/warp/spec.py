"""What defines a warp: the user's options (`WarpOptions`) and the resolved `WarpSpec`.

`WarpOptions` is what a user asks for (resolution, bounds, shape, resampling, nodata, ``-tap``,
error threshold), validated once. `make_spec` resolves it against a source grid into the
`WarpSpec` every chunk of a reprojection -- or a whole batch tile -- is warped with: grids,
GDAL's working dtype, nodata, global kernel scales, the destination block grid and the
transformer's error threshold. No I/O, no dask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rasterio.dtypes import in_dtype_range

from pipeline.errors import ReprojectError
from pipeline.warp import grid
from pipeline.warp.grid import GridSpec
from pipeline.warp.resampling import resampling_name

#: numpy dtype name -> GDAL data type name (the dtypes GDAL's warper works in).
GDAL_DATA_TYPES: dict[str, str] = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "uint64": "UInt64",
    "int64": "Int64",
    "float32": "Float32",
    "float64": "Float64",
}

#: GDAL's default error threshold of its approximate transformer, in source pixels
#: (``gdalwarp -et``, ``rio warp``, ``rasterio.warp.reproject``).
DEFAULT_ERROR_THRESHOLD = 0.125


def float_text(value: float) -> str:
    """A float as text that GDAL parses back to the same double (``nan``/``inf`` too)."""
    v = float(value)
    return "nan" if math.isnan(v) else repr(v)


def check_error_threshold(value: Any, source: str = "input") -> float:
    """Validate an error threshold (gdalwarp ``-et``, source pixels) and return it as float.

    Raises
    ------
    ReprojectError
        Not a number, negative, NaN or infinite.
    """
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise ReprojectError(
            f"{source}: error_threshold must be a number of source pixels, got {value!r}"
        ) from None
    if not math.isfinite(threshold) or threshold < 0:
        raise ReprojectError(
            f"{source}: error_threshold must be >= 0 and finite (0 = exact), got {value!r}"
        )
    return threshold


@dataclass(frozen=True)
class WarpOptions:
    """What a user asks of a warp besides the destination CRS; validated on creation.

    Attributes
    ----------
    resolution : (float, float) or None
        Destination pixel size ``(x, y)`` in destination units (one number is both).
    bounds : (left, bottom, right, top) or None
        Destination extent in destination units.
    shape : (height, width) or None
        Destination size in pixels (not with ``resolution``).
    resampling : str
        A key of `pipeline.warp.resampling.METHODS` (a `rasterio.enums.Resampling` or any
        case is normalised).
    src_nodata, dst_nodata : float or None
        Source value never used as data; destination fill and nodata.
    target_aligned_pixels : bool
        Align the extent to the resolution (``gdalwarp -tap``).
    error_threshold : float
        Largest error of GDAL's approximate transformer in source pixels (``gdalwarp -et``);
        0 is the exact transformer.
    """

    resolution: float | tuple[float, float] | None = None
    bounds: tuple[float, float, float, float] | None = None
    shape: tuple[int, int] | None = None
    resampling: str = "nearest"
    src_nodata: float | None = None
    dst_nodata: float | None = None
    target_aligned_pixels: bool = False
    error_threshold: float = DEFAULT_ERROR_THRESHOLD

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.resolution is not None and not isinstance(self.resolution, int | float):
            set_(self, "resolution", tuple(self.resolution))
        if self.bounds is not None:
            set_(self, "bounds", tuple(self.bounds))
        if self.shape is not None:
            set_(self, "shape", tuple(self.shape))
        set_(self, "resampling", resampling_name(self.resampling))
        set_(self, "error_threshold", check_error_threshold(self.error_threshold, "warp"))


@dataclass(frozen=True)
class WarpSpec:
    """Everything that defines a warp, identical for every chunk of one reprojection.

    Attributes
    ----------
    src, dst : GridSpec
        Whole source and destination grids.
    resampling : str
        A key of `pipeline.warp.resampling.METHODS`.
    dtype : str
        numpy dtype name of source, destination and GDAL's working type.
    count : int
        Number of bands.
    src_nodata, dst_nodata : float or None
        Source nodata (never used as data) and destination fill/nodata (None: fill with 0).
    xscale, yscale : float
        Global kernel scales (`pipeline.warp.grid.warp_scale`).
    source_extra : int
        GDAL's ``SOURCE_EXTRA``: source pixels added around every GDAL-internal window.
    aoi : (west, south, east, north) or None
        PROJ area of interest in degrees.
    error_threshold : float
        Largest error of GDAL's approximate transformer in source pixels (``gdalwarp -et``);
        0 is the exact transformer. Either way the result does not depend on the chunking.
    block : (int, int)
        ``(rows, cols)`` of the destination block grid GDAL warps block by block; default
        `pipeline.warp.grid.warp_block_shape` of ``dst``.
    """

    src: GridSpec
    dst: GridSpec
    resampling: str
    dtype: str
    count: int
    src_nodata: float | None
    dst_nodata: float | None
    xscale: float
    yscale: float
    source_extra: int
    aoi: tuple[float, float, float, float] | None = None
    error_threshold: float = DEFAULT_ERROR_THRESHOLD
    block: tuple[int, int] = field(default=(0, 0))

    def __post_init__(self) -> None:
        if self.block == (0, 0):
            object.__setattr__(self, "block", grid.warp_block_shape(self.dst))

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return (
            "WarpSpec",
            self.src.__dask_tokenize__(),
            self.dst.__dask_tokenize__(),
            self.resampling,
            self.dtype,
            self.count,
            None if self.src_nodata is None else float_text(self.src_nodata),
            None if self.dst_nodata is None else float_text(self.dst_nodata),
            float_text(self.xscale),
            float_text(self.yscale),
            self.source_extra,
            self.aoi,
            float_text(self.error_threshold),
            self.block,
        )

    @property
    def halo(self) -> tuple[int, int]:
        """Source pixels ``(rows, cols)`` to pad a chunk's footprint with.

        The kernel radius at the global scale (`pipeline.warp.grid.kernel_halo`) plus
        ``ceil(error_threshold)``: approximate positions are off by up to the threshold.
        """
        hy, hx = grid.kernel_halo(self.resampling, self.xscale, self.yscale)
        extra = math.ceil(self.error_threshold)
        return hy + extra, hx + extra


def _nodata(
    source: str,
    file_nodata: float | None,
    work_dtype: np.dtype[Any],
    src_nodata: float | None,
    dst_nodata: float | None,
) -> tuple[float | None, float | None]:
    """Source and destination nodata, validated against the working dtype."""
    if src_nodata is None:
        src_nodata = file_nodata
        if src_nodata is None and work_dtype.kind == "f":
            src_nodata = float("nan")
    if dst_nodata is None:
        dst_nodata = src_nodata
    for label, value in (("src_nodata", src_nodata), ("dst_nodata", dst_nodata)):
        if value is None:
            continue
        if not in_dtype_range(value, work_dtype.name) or (
            work_dtype.kind != "f" and (not math.isfinite(float(value)) or value != int(value))
        ):
            raise ReprojectError(
                f"{source}: {label} {value!r} does not fit the data type {work_dtype.name!r}"
            )
    return (
        None if src_nodata is None else float(src_nodata),
        None if dst_nodata is None else float(dst_nodata),
    )


def make_spec(
    src: GridSpec,
    dtype: np.dtype[Any],
    count: int,
    file_nodata: float | None,
    dst_crs: Any,
    options: WarpOptions,
    *,
    source: str = "input",
) -> WarpSpec:
    """Resolve ``options`` for a ``count``-band ``dtype`` source on ``src``.

    Parameters
    ----------
    src : GridSpec
        The whole source grid.
    dtype : numpy.dtype
        Source dtype; bool is warped as uint8.
    count : int
        Number of bands.
    file_nodata : float or None
        The source's own nodata (used unless ``options.src_nodata`` is set).
    dst_crs : CRS-like
        Destination CRS (`pipeline.warp.grid.parse_crs`).
    options : WarpOptions
        The user's options.
    source : str
        Name of the input for error messages.

    Raises
    ------
    CRSInputError, ReprojectError
        Invalid CRS, unsupported dtype, conflicting grid options, nodata outside the dtype.
    """
    work_dtype = np.dtype("uint8") if dtype.kind == "b" else dtype
    if work_dtype.name not in GDAL_DATA_TYPES:
        raise ReprojectError(
            f"{source}: unsupported data type {dtype.name!r} for reprojection "
            "(integer, float or bool rasters only)"
        )
    dst = grid.destination_grid(
        src,
        dst_crs,
        resolution=options.resolution,
        bounds=options.bounds,
        shape=options.shape,
        target_aligned_pixels=options.target_aligned_pixels,
    )
    src_nd, dst_nd = _nodata(
        source, file_nodata, work_dtype, options.src_nodata, options.dst_nodata
    )
    if dtype.kind == "b" and dst_nd not in (None, 0.0, 1.0):
        raise ReprojectError(f"{source}: dst_nodata for a bool raster must be 0 or 1")
    xscale, yscale = grid.warp_scale(src, dst)
    halo = grid.kernel_halo(options.resampling, xscale, yscale)
    return WarpSpec(
        src=src,
        dst=dst,
        resampling=options.resampling,
        dtype=work_dtype.name,
        count=count,
        src_nodata=src_nd,
        dst_nodata=dst_nd,
        xscale=xscale,
        yscale=yscale,
        source_extra=max(halo),
        aoi=grid.area_of_interest(src),
        error_threshold=options.error_threshold,
    )


__all__ = [
    "DEFAULT_ERROR_THRESHOLD",
    "GDAL_DATA_TYPES",
    "WarpOptions",
    "WarpSpec",
    "check_error_threshold",
    "float_text",
    "make_spec",
]
