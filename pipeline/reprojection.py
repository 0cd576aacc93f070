"""Lazy, memory-bounded reprojection equal to a whole-array GDAL warp, pixel for pixel.

`reproject` builds one dask task per destination chunk. Each task depends only on the source
chunks its footprint touches (the chunk's edges densified to 21 points each, transformed to
the source, padded by the resampling kernel's radius scaled by the shrink factor, clipped);
destination chunks outside the source are fill tasks without dependencies. When the source
is an untouched `open_raster` array (`pipeline.io.open.file_source`) and
``pipeline.reproject.direct-reads`` is true (the default), each task reads exactly that padded
window from the file itself (`pipeline.io.open.read_source_window`, the same reader and
values as the open layer) and depends on nothing: dask would otherwise keep every source
chunk in memory until all destination chunks needing it ran -- a band of chunks as wide as
the raster -- so peak memory grew with the raster's width (16384^2 x 3 to EPSG:3857: 851
MiB through source chunks, 496 MiB with direct reads; 8192^2: 616 vs 448). A persisted array
is used from memory. Every task warps
with identical GDAL options (exact transformer, one global XSCALE/YSCALE, ``NUM_THREADS=1``;
see `pipeline.warpengine`), so the result equals `pipeline.warpengine.warp_array` -- the same
warp of the whole in-memory source in one go -- for every chunking.

Exactness, measured on rasterio 1.4.4 / GDAL 3.10.3 (``tests/test_reproject.py``,
``benchmarks/compare_gdal_default.py``): 0 differing pixels between chunked (64- and
100-pixel chunks, odd chunkings with 1-pixel-wide edge chunks, random chunkings) and
whole-array warps for nearest, bilinear, cubic, cubic_spline, lanczos, average, mode, max,
min, med, q1, q3 and rms, on RGB.byte.tif (to EPSG:3857 and EPSG:4326), shade.tif,
float_nan.tif, world.rgb.tif (to EPSG:3857), all-nodata.tif, and synthetic float64, int8 and
bool rasters with nodata, including same-CRS up- and downsampling. ``sum`` is not exact on
GDAL < 3.12.1 (3199 of 1.77 million values differ for RGB.byte.tif to EPSG:3857 in 64-pixel
chunks): GDAL's own sum kernel has chunk-dependent artifacts (OSGeo/gdal#13539), so two
whole-array GDAL warps that differ only in GDAL's internal chunking disagree as well.

Distance to GDAL's plain default (``rasterio.warp.reproject`` of the whole array: approximate
transformer with 0.125 pixel error), RGB.byte.tif to EPSG:3857, share of differing values and
largest difference among pixels valid in both: nearest 3.9% (246), mode 3.3%, max 2.8%,
min 2.8%, med/q1/q3 3.3%, cubic_spline 19.5% (19), bilinear 22.2% (28), average 22.2% (27),
rms 22.3% (63), cubic 23.5% (36), lanczos 25.4% (41). All of it comes from the approximate
transformer: rasterio's ``WarpedVRT`` with ``tolerance=0.125`` reproduces GDAL's default
exactly, and with ``tolerance=1e-9`` reproduces our whole-array warp exactly (tested); our
XSCALE/YSCALE are the values GDAL itself computes for the whole raster (tested).

Opt-in approximation (``error_threshold > 0``, gdalwarp's ``-et``): the same warp through
GDAL's approximate transformer. With 0.125 and a single destination chunk it equals that
default warp, 0 differing values for nearest and bilinear (``tests/test_error_threshold.py``);
with several chunks each approximates on its own, so the result depends on the chunking
(see `reproject`'s Notes).

Nodata: source nodata (from ``src_nodata`` or the array's ``_FillValue``; NaN for floats
without one) never contributes to valid pixels; for multi-band rasters a pixel is nodata when
all its bands are (GDAL's ``UNIFIED_SRC_NODATA=YES``, as rasterio and gdalwarp). The
destination nodata defaults to the source nodata, NaN for floats without one, and none for
integers without one (filled with 0, as GDAL does). Band-level masks of the file (internal
mask bands) are not carried by `pipeline.open_raster` and so are not used.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Union, cast

import dask.array as dsa
import dask.config
import numpy as np
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from dask.array.core import concatenate3
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from rasterio.dtypes import in_dtype_range
from rasterio.enums import Resampling

from pipeline import config, grid, warpgrid
from pipeline import overviews as ovr
from pipeline.errors import (
    ChunkingError,
    CRSInputError,
    PipelineWarning,
    RasterInputError,
    ReprojectError,
)
from pipeline.io.open import (
    FileSource,
    file_source,
    open_raster,
    overview_shapes,
    read_source_window,
    user_name,
)
from pipeline.warpengine import GDAL_DATA_TYPES, WarpSpec, area_of_interest, warp_window
from pipeline.warpgrid import GridSpec, Window

ChunksArg = Union[  # noqa: UP007
    int, tuple[int, int], tuple[Sequence[int], Sequence[int]], Mapping[str, int], None
]

#: Default destination chunk edge (a multiple of 512, independent of the source chunks).
#: 1024 rather than 2048: as fast on 8192 x 8192 x 3 (17.2 vs 17.7 s on 2 cores) with ~18%
#: less peak memory, since each thread holds a smaller chunk, source window and warp buffer.
DEFAULT_CHUNK = 1024
#: Largest default chunk in bytes (all bands), and largest source window it may need; the
#: edge shrinks (1024, 768, 512, then 256, 128) until both fit.
DEFAULT_CHUNK_BYTES = 64 * 2**20
DEFAULT_SOURCE_BYTES = 128 * 2**20
#: Encoding keys that describe the source file, not the reprojected array.
_SOURCE_ENCODING = ("preferred_chunks", "_FillValue", "pipeline_source")
#: Source attributes that describe pixel values which no longer exist after resampling.
_STALE_ATTRS = ("_FillValue", "missing_value")
_STALE_PREFIXES = ("STATISTICS_",)
#: GDAL version whose ``sum`` resampling is chunking-invariant (OSGeo/gdal#13541).
_GDAL_SUM_FIXED = (3, 12, 1)


def _gdal_version() -> tuple[int, ...]:
    return tuple(int(p) for p in rasterio.__gdal_version__.split(".")[:3] if p.isdigit())


def resampling_name(resampling: str | Resampling) -> str:
    """Normalise ``resampling`` (a name or `rasterio.enums.Resampling`) to a warp method name."""
    name = resampling.name if isinstance(resampling, Resampling) else str(resampling).lower()
    if name not in warpgrid.RESAMPLING_RADIUS:
        known = ", ".join(warpgrid.RESAMPLING_RADIUS)
        raise ReprojectError(f"unknown resampling {resampling!r}; choose one of {known}")
    return name


def check_error_threshold(value: float, source: str = "input") -> float:
    """Validate ``error_threshold`` (gdalwarp ``-et``, source pixels) and return it as float.

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


def _source_name(da: xr.DataArray) -> str:
    return str(da.encoding.get("source") or da.name or "input")


def _source_grid(da: xr.DataArray) -> GridSpec:
    source = _source_name(da)
    crs = da.rio.crs
    if crs is None:
        raise CRSInputError(
            f"{source}: no CRS; assign one (da.rio.write_crs(...)) before reprojecting"
        )
    try:
        transform = da.rio.transform(recalc=False)
    except Exception as err:  # rioxarray raises several types for missing georeferencing
        raise RasterInputError(f"{source}: no usable geotransform ({err})") from err
    if not all(math.isfinite(v) for v in tuple(transform)[:6]) or transform.determinant == 0:
        raise RasterInputError(f"{source}: degenerate geotransform {tuple(transform)[:6]!r}")
    return GridSpec(crs, transform, int(da.sizes["x"]), int(da.sizes["y"]))


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


def _default_chunk(count: int, itemsize: int, xscale: float, yscale: float) -> int:
    """Chunk edge whose output and source window (``edge / scale`` when shrinking) both fit."""
    shrink = 1.0 / min(xscale, 1.0) / min(yscale, 1.0)
    pixel = count * itemsize
    for edge in (DEFAULT_CHUNK, 768, 512, 256):
        if edge * edge * pixel <= DEFAULT_CHUNK_BYTES and (
            edge * edge * pixel * shrink <= DEFAULT_SOURCE_BYTES
        ):
            return edge
    return 128


def _destination_chunks(chunks: ChunksArg, spec: WarpSpec) -> tuple[grid.Chunks1D, grid.Chunks1D]:
    """Normalise ``chunks`` to ``(y chunks, x chunks)`` for the destination grid."""
    height, width = spec.dst.shape
    if chunks is None:
        itemsize = np.dtype(spec.dtype).itemsize
        edge = _default_chunk(spec.count, itemsize, spec.xscale, spec.yscale)
        return grid.regular_chunks(height, edge), grid.regular_chunks(width, edge)
    if isinstance(chunks, Mapping):
        unknown = set(chunks) - {"y", "x"}
        if unknown:
            raise ChunkingError(f"unknown destination chunk dimension(s) {sorted(unknown)!r}")
        cy, cx = int(chunks.get("y", height)), int(chunks.get("x", width))
    elif isinstance(chunks, int) and not isinstance(chunks, bool):
        cy = cx = chunks
    elif (
        isinstance(chunks, tuple)
        and len(chunks) == 2
        and all(isinstance(c, Sequence) for c in chunks)
    ):
        ys = tuple(int(c) for c in chunks[0])  # type: ignore[union-attr]
        xs = tuple(int(c) for c in chunks[1])  # type: ignore[union-attr]
        if sum(ys) != height or sum(xs) != width or min(ys + xs) < 1:
            raise ChunkingError(
                f"explicit chunks must be positive and sum to the destination shape "
                f"{spec.dst.shape!r}, got sums {(sum(ys), sum(xs))!r}"
            )
        return ys, xs
    elif isinstance(chunks, tuple) and len(chunks) == 2:
        cy, cx = int(chunks[0]), int(chunks[1])  # type: ignore[arg-type]
    else:
        raise ChunkingError(
            f"chunks must be None, an int, (y, x), ((y chunks), (x chunks)) or a dict, "
            f"got {chunks!r}"
        )
    if cy < 1 or cx < 1:
        raise ChunkingError(f"chunk sizes must be positive, got {(cy, cx)!r}")
    return grid.regular_chunks(height, cy), grid.regular_chunks(width, cx)


def _fill(shape: tuple[int, int, int], value: float | None, dtype: str) -> np.ndarray:
    """A destination chunk no source pixel reaches."""
    return np.full(shape, 0 if value is None else value, dtype=dtype)


def _warp(
    spec: WarpSpec,
    source: np.ndarray,
    source_window: Window,
    dst_window: Window,
    out_dtype: str,
    block: tuple[int, int],
) -> np.ndarray:
    """Warp one destination chunk from its padded source pixels, in the output dtype."""
    out = warp_window(spec, source, source_window, dst_window, block=block)
    return out if out.dtype == np.dtype(out_dtype) else out.astype(out_dtype)


def _warp_task(
    blocks: list[Any],
    crop: tuple[int, int, int, int],
    source_window: Window,
    dst_window: Window,
    spec: WarpSpec,
    out_dtype: str,
    block: tuple[int, int],
) -> np.ndarray:
    """Assemble the touched source blocks, crop them to the padded window and warp."""
    r0, r1, c0, c1 = crop
    source = concatenate3(blocks)[:, r0:r1, c0:c1]
    return _warp(spec, source, source_window, dst_window, out_dtype, block)


def _warp_file_task(
    source: FileSource,
    source_window: Window,
    dst_window: Window,
    spec: WarpSpec,
    out_dtype: str,
    block: tuple[int, int],
) -> np.ndarray:
    """Read the padded source window straight from the file and warp it."""
    rows = (source_window.row0, source_window.row1)
    cols = (source_window.col0, source_window.col1)
    pixels = read_source_window(source, rows, cols)
    return _warp(spec, pixels, source_window, dst_window, out_dtype, block)


def _block_length(chunks: Sequence[int]) -> int:
    """Largest length dividing every chunk but the last: chunks are then whole VRT blocks."""
    if len(chunks) == 1:
        return int(chunks[0])
    return math.gcd(*(int(c) for c in chunks[:-1]))


def _build_graph(
    name: str,
    data: dsa.Array,
    windows: list[list[Window | None]],
    chunks: tuple[grid.Chunks1D, grid.Chunks1D],
    spec: WarpSpec,
    out_dtype: str,
    file: FileSource | None = None,
) -> dict[Any, Any]:
    """One task per destination chunk, fed only by the source blocks its window touches.

    With ``file`` (``data`` is that file's untouched `open_raster` array) each task reads its
    padded source window from the file itself instead and depends on nothing.
    """
    band_chunks, y_chunks, x_chunks = data.chunks
    y_edges = np.concatenate([[0], np.cumsum(y_chunks)])
    x_edges = np.concatenate([[0], np.cumsum(x_chunks)])
    dy_edges = np.concatenate([[0], np.cumsum(chunks[0])])
    dx_edges = np.concatenate([[0], np.cumsum(chunks[1])])
    count = sum(band_chunks)
    block = (_block_length(chunks[0]), _block_length(chunks[1]))
    dsk: dict[Any, Any] = {}
    for i in range(len(chunks[0])):
        for j in range(len(chunks[1])):
            dst_window = Window(
                int(dy_edges[i]), int(dy_edges[i + 1]), int(dx_edges[j]), int(dx_edges[j + 1])
            )
            key = (name, 0, i, j)
            win = windows[i][j]
            if win is None:
                dsk[key] = (_fill, (count, *dst_window.shape), spec.dst_nodata, out_dtype)
                continue
            if file is not None:
                dsk[key] = (_warp_file_task, file, win, dst_window, spec, out_dtype, block)
                continue
            yi = range(
                int(np.searchsorted(y_edges, win.row0, side="right")) - 1,
                int(np.searchsorted(y_edges, win.row1, side="left")),
            )
            xi = range(
                int(np.searchsorted(x_edges, win.col0, side="right")) - 1,
                int(np.searchsorted(x_edges, win.col1, side="left")),
            )
            blocks = [
                [[(data.name, b, y, x) for x in xi] for y in yi] for b in range(len(band_chunks))
            ]
            top, left = int(y_edges[yi[0]]), int(x_edges[xi[0]])
            crop = (win.row0 - top, win.row1 - top, win.col0 - left, win.col1 - left)
            dsk[key] = (_warp_task, blocks, crop, win, dst_window, spec, out_dtype, block)
    return dsk


def _attrs(da: xr.DataArray) -> dict[str, Any]:
    return {
        k: v
        for k, v in da.attrs.items()
        if k not in _STALE_ATTRS and not k.startswith(_STALE_PREFIXES)
    }


def warp_spec(
    da: xr.DataArray,
    dst_crs: Any,
    *,
    resolution: float | Sequence[float] | None = None,
    bounds: Sequence[float] | None = None,
    shape: tuple[int, int] | None = None,
    resampling: str | Resampling = "nearest",
    src_nodata: float | None = None,
    dst_nodata: float | None = None,
    target_aligned_pixels: bool = False,
    error_threshold: float = 0.0,
) -> WarpSpec:
    """The warp `reproject` applies to every chunk of ``da`` (arguments as `reproject`).

    ``pipeline.warpengine.warp_array(warp_spec(da, ...), da.values)`` warps the whole array
    in one go with the same options: the reference a chunked result equals pixel for pixel.
    Bool rasters are warped as uint8 (``spec.dtype``). Nothing is computed.
    """
    source = _source_name(da)
    if da.dims != ("band", "y", "x"):
        raise ReprojectError(
            f"{source}: reprojection expects dims ('band', 'y', 'x'), got {da.dims!r}"
        )
    return grid_warp_spec(
        _source_grid(da),
        np.dtype(da.dtype),
        int(da.sizes["band"]),
        da.rio.nodata,
        dst_crs,
        source=source,
        resolution=resolution,
        bounds=bounds,
        shape=shape,
        resampling=resampling,
        src_nodata=src_nodata,
        dst_nodata=dst_nodata,
        target_aligned_pixels=target_aligned_pixels,
        error_threshold=error_threshold,
    )


def grid_warp_spec(
    src: GridSpec,
    dtype: np.dtype[Any],
    count: int,
    file_nodata: float | None,
    dst_crs: Any,
    *,
    source: str = "input",
    resolution: float | Sequence[float] | None = None,
    bounds: Sequence[float] | None = None,
    shape: tuple[int, int] | None = None,
    resampling: str | Resampling = "nearest",
    src_nodata: float | None = None,
    dst_nodata: float | None = None,
    target_aligned_pixels: bool = False,
    error_threshold: float = 0.0,
) -> WarpSpec:
    """`warp_spec` from grid metadata alone (no DataArray): used per tile by batch mode."""
    threshold = check_error_threshold(error_threshold, source)
    work_dtype = np.dtype("uint8") if dtype.kind == "b" else dtype
    if work_dtype.name not in GDAL_DATA_TYPES:
        raise ReprojectError(
            f"{source}: unsupported data type {dtype.name!r} for reprojection "
            "(integer, float or bool rasters only)"
        )
    method = resampling_name(resampling)
    dst = warpgrid.destination_grid(
        src,
        dst_crs,
        resolution=resolution,
        bounds=bounds,
        shape=shape,
        target_aligned_pixels=target_aligned_pixels,
    )
    src_nd, dst_nd = _nodata(source, file_nodata, work_dtype, src_nodata, dst_nodata)
    if dtype.kind == "b" and dst_nd not in (None, 0.0, 1.0):
        raise ReprojectError(f"{source}: dst_nodata for a bool raster must be 0 or 1")
    xscale, yscale = warpgrid.warp_scale(src, dst)
    halo = warpgrid.kernel_halo(method, xscale, yscale)
    return WarpSpec(
        src=src,
        dst=dst,
        resampling=method,
        dtype=work_dtype.name,
        count=count,
        src_nodata=src_nd,
        dst_nodata=dst_nd,
        xscale=xscale,
        yscale=yscale,
        source_extra=max(halo),
        aoi=area_of_interest(src),
        error_threshold=threshold,
    )


def _overview_source(da: xr.DataArray, spec: WarpSpec) -> tuple[xr.DataArray, WarpSpec] | None:
    """The overview of ``da``'s file to warp instead of ``da``, and its warp; or None.

    Only for an untouched full-resolution `open_raster` array (`file_source`) whose warp
    shrinks by `pipeline.overviews.MIN_SHRINK` or more and whose file has overviews; the
    level is the one ``gdalwarp -ovr AUTO`` picks (`pipeline.overviews.best_overview_level`).
    The overview is opened with source chunks of about the bytes of ``da``'s chunks.
    """
    source = file_source(da)
    if source is None or source.overview_level is not None:
        return None
    if ovr.shrink_factor(spec.xscale, spec.yscale) < ovr.MIN_SHRINK:
        return None  # decided before opening the file again
    shapes = overview_shapes(source.path)
    level = ovr.overview_level_for(spec, spec.src.width, [w for _, w in shapes])
    if level is None:
        return None
    height, width = shapes[level]
    data: dsa.Array = da.data
    chunk_bytes = data.dtype.itemsize * math.prod(max(c) for c in data.chunks)
    with dask.config.set({"pipeline.open.chunk-bytes": int(chunk_bytes)}):
        overview = open_raster(source.path, bands=list(source.bands), overview_level=level)
    if overview.shape != (spec.count, height, width):
        return None  # the file changed since it was opened: keep the array we were given
    return overview, ovr.overview_warp_spec(spec, height, width)


def reproject(
    da: xr.DataArray,
    dst_crs: Any,
    *,
    resolution: float | Sequence[float] | None = None,
    bounds: Sequence[float] | None = None,
    shape: tuple[int, int] | None = None,
    resampling: str | Resampling = "nearest",
    src_nodata: float | None = None,
    dst_nodata: float | None = None,
    chunks: ChunksArg = None,
    target_aligned_pixels: bool = False,
    overviews: bool = True,
    error_threshold: float = 0.0,
) -> xr.DataArray:
    """Reproject ``da`` to ``dst_crs``, lazily, chunk by chunk, exactly as one GDAL warp.

    Parameters
    ----------
    da : xarray.DataArray
        ``(band, y, x)`` raster with a CRS and transform (e.g. from `open_raster` or
        `apply_kernel`); dask-backed or in memory. Integer, float and bool data.
    dst_crs : str, int, pyproj.CRS or rasterio.crs.CRS
        Destination CRS: ``"EPSG:3857"``, an authority code, a PROJ string or WKT.
    resolution : float or (float, float), optional
        Destination pixel size in destination units.
    bounds : (left, bottom, right, top), optional
        Destination extent in destination units.
    shape : (height, width), optional
        Destination size in pixels (not with ``resolution``).
    resampling : str or rasterio.enums.Resampling, default "nearest"
        nearest, bilinear, cubic, cubic_spline, lanczos, average, mode, max, min, med, q1,
        q3, sum or rms.
    src_nodata : float, optional
        Source value never used as data (default: the array's nodata; NaN for floats).
    dst_nodata : float, optional
        Destination fill and nodata (default: the source nodata; NaN for floats; none for
        integers without nodata, whose empty areas are 0 as in GDAL).
    chunks : int, (y, x), ((y chunks), (x chunks)) or dict, optional
        Destination chunks, independent of the source chunks. Default: 1024 x 1024, smaller
        (768, 512, ...) when a chunk would exceed 64 MiB or the source window it needs
        128 MiB (heavy downsampling).
    target_aligned_pixels : bool, default False
        Align the destination extent to the resolution (``gdalwarp -tap``).
    overviews : bool, default True
        When ``da`` is an untouched `open_raster` array of a file with overviews and the
        warp shrinks it by 2x or more, read the overview ``gdalwarp -ovr AUTO`` would read
        instead of the full-resolution image (see Notes). False always reads full
        resolution (``gdalwarp -ovr NONE``).
    error_threshold : float, default 0.0
        Largest error, in source pixels, of GDAL's approximate transformer (gdalwarp's
        ``-et``). 0 uses the exact transformer: any chunking equals the whole-array warp,
        pixel for pixel. A value > 0 (0.125 is GDAL's default) wraps it in GDAL's
        ``ApproxTransformer``: faster, but chunk-dependent (see Notes).

    Returns
    -------
    xarray.DataArray
        Lazy ``(band, y, x)`` array on the destination grid (default: what
        `rasterio.warp.calculate_default_transform` chooses; geographic sources are clamped
        to +-85.0511 degrees for Mercator), with pixel-centre ``x``/``y`` coordinates, CRS,
        transform and nodata written the rioxarray way, attributes, tags and band
        descriptions kept (stale ``STATISTICS_*`` dropped), same dtype. Nothing is read or
        warped until computed; each chunk needs only the source chunks under its footprint,
        so memory is bounded by a few chunks per thread. The dask layer is named
        ``pipeline-reproject-<token>``. For an untouched `open_raster` array each task
        reads its own source window from the file instead (config
        ``pipeline.reproject.direct-reads``), so the graph has no source layer.

    Raises
    ------
    CRSInputError
        ``da`` has no CRS, or ``dst_crs`` is invalid or ambiguous.
    ReprojectError
        Unknown resampling, conflicting grid options, nodata outside the dtype, unsupported
        dtype, negative or NaN ``error_threshold``.
    ChunkingError
        Malformed ``chunks``.

    Warns
    -----
    PipelineWarning
        ``resampling="sum"`` on GDAL < 3.12.1, whose sum kernel is not chunking-invariant
        (OSGeo/gdal#13539).

    Notes
    -----
    Equality with the whole-array warp holds for every chunking because every chunk uses
    the same global geotransforms, the exact (not approximate) transformer, the
    whole-raster XSCALE/YSCALE and a source window covering every kernel tap; see
    `pipeline.warpengine` for the GDAL details and the measured distance to GDAL's default.
    This holds for the default ``error_threshold=0`` only.

    Approximate transformer (``error_threshold > 0``): GDAL interpolates source
    coordinates linearly along each destination row segment, splitting a segment until the
    interpolation error at its midpoint is at most the threshold. Each warp call -- each
    destination chunk -- approximates on its own, over its own segments, so the result equals
    a whole-array warp with the same threshold only when the output is a single chunk (as
    for batch tiles on the direct path, which are warped whole). This is exactly like
    gdalwarp, whose output depends on its ``-wm`` chunking. Differences between chunkings
    are bounded by the threshold in source pixels: every sampled source position is within
    it of the exact one (GDAL checks the error at segment midpoints), so two chunkings
    differ by less than twice it (measured: at most 0.9x the threshold). Nearest neighbour
    then picks a neighbouring pixel for a small fraction of outputs (2.7% of RGB.byte.tif's
    values to EPSG:3857 in 128-pixel chunks at 0.125) and interpolating kernels move by a
    fraction of the local gradient (bilinear: 18% of values, by at most 26 of 255); see
    ``tests/test_error_threshold.py``. With 0.125 and a single
    chunk the result equals GDAL's default ``rasterio.warp.reproject`` of the whole array.
    Source windows are padded by ``ceil(error_threshold)`` extra pixels.

    Overview-aware reads (``overviews=True``): the destination grid is always computed from
    the full-resolution source, so it is the same with and without overviews. If ``da`` is
    exactly what `open_raster` returned for a file (same dask layer and shape: no kernel,
    slice, rechunk or arithmetic applied), the file has overviews, and the warp shrinks the
    source by at least 2x (source pixels per destination pixel, from the global
    XSCALE/YSCALE, along the less shrunk axis), the overview gdalwarp's ``-ovr AUTO`` rule
    picks (`pipeline.overviews.best_overview_level`: the coarsest overview whose
    decimation factor is below the shrink factor + 0.1) is opened with
    ``open_raster(path, overview_level=k)`` and warped onto that grid with XSCALE/YSCALE
    recomputed for its pixel size. The result then equals the whole-array warp of the
    overview's pixels (`pipeline.overviews.overview_warp_spec`) for every chunking, and is
    close to, not equal to, the full-resolution warp (the overview's own resampling, e.g.
    ``gdaladdo -r average``, stands in for part of the warp's).
    """
    if resampling_name(resampling) == "sum" and _gdal_version() < _GDAL_SUM_FIXED:
        warnings.warn(
            f"resampling='sum' on GDAL {rasterio.__gdal_version__} has chunk-dependent "
            "artifacts (OSGeo/gdal#13539, fixed in 3.12.1); the result may differ from a "
            "whole-array warp",
            PipelineWarning,
            stacklevel=2,
        )
    spec = warp_spec(
        da,
        dst_crs,
        resolution=resolution,
        bounds=bounds,
        shape=shape,
        resampling=resampling,
        src_nodata=src_nodata,
        dst_nodata=dst_nodata,
        target_aligned_pixels=target_aligned_pixels,
        error_threshold=error_threshold,
    )
    dtype = np.dtype(da.dtype)
    source_da = da
    if overviews:
        overview = _overview_source(da, spec)
        if overview is not None:
            source_da, spec = overview
    dst, count = spec.dst, spec.count
    out_chunks = _destination_chunks(chunks, spec)
    hy, hx = warpgrid.kernel_halo(spec.resampling, spec.xscale, spec.yscale)
    extra = math.ceil(spec.error_threshold)  # approximate positions are off by up to this
    halo = (hy + extra, hx + extra)
    windows = warpgrid.source_windows(spec.src, dst, out_chunks, halo=halo)

    if not hasattr(source_da.data, "dask"):
        source_da = source_da.chunk()
    data: dsa.Array = source_da.data
    file = file_source(source_da, lazy=True) if config.get("reproject.direct-reads") else None
    name = f"pipeline-reproject-{tokenize(data.name, spec, out_chunks, dtype.str, file)}"
    dsk = _build_graph(name, data, windows, out_chunks, spec, dtype.name, file)
    if file is None:
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=[cast(Any, data)])
    else:
        graph = HighLevelGraph({name: dsk}, {name: set()})
    result_data = dsa.Array(
        graph,
        name,
        chunks=((count,), *out_chunks),
        dtype=dtype,
        meta=np.empty((0, 0, 0), dtype=dtype),
    )
    y, x = warpgrid.pixel_center_coords(dst)
    out = xr.DataArray(
        result_data,
        dims=("band", "y", "x"),
        coords={"band": da["band"].values, "y": y, "x": x},
        attrs=_attrs(da),
    )
    out.name = user_name(da)  # not the dask name xarray would infer
    out = out.rio.write_crs(dst.crs)
    out = out.rio.write_transform(dst.transform)
    nodata = None if spec.dst_nodata is None else dtype.type(spec.dst_nodata).item()
    out = out.rio.write_nodata(nodata, encoded=False)
    out.encoding = {k: v for k, v in da.encoding.items() if k not in _SOURCE_ENCODING}
    return out
