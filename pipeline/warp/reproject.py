"""`reproject`: lazy, memory-bounded reprojection equal to a whole-array GDAL warp.

The public entry point of `pipeline.warp`. It resolves the user's options into a
`pipeline.warp.spec.WarpSpec` (`warp_spec`), picks the overview ``gdalwarp -ovr AUTO`` would
read (`pipeline.warp.overviews`), and builds one task per destination chunk
(`pipeline.warp.graph`), each warped by `pipeline.warp.tile.warp_and_cast` through GDAL
(`pipeline.warp.engine`, where every GDAL workaround is explained).

The result equals `pipeline.warp.engine.warp_array` -- the same warp of the whole in-memory
source in one go -- pixel for pixel, for every chunking, with GDAL's default approximate
transformer (``error_threshold=0.125``) and with the exact one (``error_threshold=0``).
Measured on rasterio 1.4.4 / GDAL 3.10.3 (``tests/test_reproject.py``,
``tests/test_error_threshold.py``): 0 differing pixels between chunked (random chunkings,
1-pixel edge chunks, chunks not aligned to the block grid) and whole-array warps for every
resampling method but ``sum`` on GDAL < 3.12.1 (GDAL's own sum kernel has chunk-dependent
artifacts, OSGeo/gdal#13539), on the rasters of ``../shared/data`` and synthetic float64, int8
and bool rasters with nodata, including same-CRS up- and downsampling.

Nodata: source nodata (from ``src_nodata`` or the array's ``_FillValue``; NaN for floats
without one) never contributes to valid pixels; for multi-band rasters a pixel is nodata when
all its bands are (GDAL's ``UNIFIED_SRC_NODATA=YES``, as rasterio and gdalwarp). The
destination nodata defaults to the source nodata, NaN for floats without one, and none for
integers without one (filled with 0, as GDAL does). Band-level masks of the file (internal
mask bands) are not carried by `pipeline.open_raster` and so are not used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import dask.array as dsa
import dask.config
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from rasterio.enums import Resampling

from pipeline import config
from pipeline.errors import CRSInputError, RasterInputError, ReprojectError
from pipeline.io.files import is_remote, overview_shapes
from pipeline.io.open import file_source, open_raster, user_name
from pipeline.warp import grid
from pipeline.warp import overviews as ovr
from pipeline.warp.engine import warn_if_chunk_dependent
from pipeline.warp.graph import ChunksArg, build_graph, destination_chunks
from pipeline.warp.grid import GridSpec
from pipeline.warp.spec import DEFAULT_ERROR_THRESHOLD, WarpOptions, WarpSpec, make_spec

#: Encoding keys that describe the source file, not the reprojected array.
_SOURCE_ENCODING = ("preferred_chunks", "_FillValue", "pipeline_source")
#: Source attributes that describe pixel values which no longer exist after resampling.
_STALE_ATTRS = ("_FillValue", "missing_value")
_STALE_PREFIXES = ("STATISTICS_",)


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


def _attrs(da: xr.DataArray) -> dict[str, Any]:
    return {
        k: v
        for k, v in da.attrs.items()
        if k not in _STALE_ATTRS and not k.startswith(_STALE_PREFIXES)
    }


def warp_spec(
    da: xr.DataArray,
    dst_crs: Any,
    options: WarpOptions | None = None,
    **kwargs: Any,
) -> WarpSpec:
    """The warp `reproject` applies to every chunk of ``da``.

    Options are a `WarpOptions` or its fields as keywords (as `reproject` takes them).
    ``pipeline.warp.engine.warp_array(warp_spec(da, ...), da.values)`` warps the whole array
    in one go with the same options: the reference a chunked result equals pixel for pixel.
    Bool rasters are warped as uint8 (``spec.dtype``). Nothing is computed.
    """
    source = _source_name(da)
    if da.dims != ("band", "y", "x"):
        raise ReprojectError(
            f"{source}: reprojection expects dims ('band', 'y', 'x'), got {da.dims!r}"
        )
    opts = options if options is not None else WarpOptions(**kwargs)
    return make_spec(
        _source_grid(da),
        np.dtype(da.dtype),
        int(da.sizes["band"]),
        da.rio.nodata,
        dst_crs,
        opts,
        source=source,
    )


def _overview_source(da: xr.DataArray, spec: WarpSpec) -> tuple[xr.DataArray, WarpSpec] | None:
    """The overview of ``da``'s file to warp instead of ``da``, and its warp; or None.

    Only for an untouched full-resolution `open_raster` array (`file_source`) whose warp
    shrinks by `pipeline.warp.overviews.MIN_SHRINK` or more and whose file has overviews; the
    level is the one ``gdalwarp -ovr AUTO`` picks (`pipeline.warp.overviews.best_overview_level`).
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
    error_threshold: float = DEFAULT_ERROR_THRESHOLD,
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
        Destination chunks, independent of the source chunks; the result does not depend on
        them. Default: about 1024 x 1024 in whole blocks of the warp's block grid, smaller
        (768, 512, ...) when a chunk would exceed 64 MiB or the source window it needs
        128 MiB (heavy downsampling). For a remote file (HTTP, S3), strips of the same area
        as wide as the output (up to 8192 pixels): one request per block row of the source
        (`pipeline.warp.graph.destination_chunks`).
    target_aligned_pixels : bool, default False
        Align the destination extent to the resolution (``gdalwarp -tap``).
    overviews : bool, default True
        When ``da`` is an untouched `open_raster` array of a file with overviews and the
        warp shrinks it by 2x or more, read the overview ``gdalwarp -ovr AUTO`` would read
        instead of the full-resolution image (see Notes). False always reads full
        resolution (``gdalwarp -ovr NONE``).
    error_threshold : float, default 0.125
        Largest error, in source pixels, of GDAL's approximate transformer (gdalwarp's
        ``-et``, GDAL's default 0.125); 0 uses the exact transformer. Either way any
        chunking equals the whole-array warp, pixel for pixel (see Notes).

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
    The transformer. By default, as gdalwarp and ``rio warp``, GDAL's approximate
    transformer: it interpolates source positions linearly along each row of each block of
    the warp's destination block grid (`pipeline.warp.grid.warp_block_shape`: 128 rows; as
    wide as the output up to 1024 columns, else 512), splitting a row segment until the
    error at its midpoint is at most ``error_threshold`` source pixels (0.125 by default).
    The block grid depends only on the destination grid, so the result is the same for any
    chunking, and a tile at most 1024 pixels wide equals ``rasterio.warp.reproject`` /
    ``rio warp`` with GDAL's defaults pixel for pixel. ``error_threshold=0`` (``--et 0``)
    uses the exact transformer, about 1.5-2.5x slower: sampled positions differ from the
    approximate ones by less than the threshold, so nearest neighbour picks a neighbouring
    pixel for a few percent of outputs and interpolating kernels move by a fraction of the
    local gradient (``benchmarks/compare_gdal_default.py`` prints the distance). Every chunk
    uses the same global geotransforms, the whole-raster XSCALE/YSCALE and a source window
    covering every kernel tap (`pipeline.warp.engine` has the GDAL details).

    Overview-aware reads (``overviews=True``): the destination grid is always computed from
    the full-resolution source, so it is the same with and without overviews. If ``da`` is
    exactly what `open_raster` returned for a file (same dask layer and shape: no kernel,
    slice, rechunk or arithmetic applied), the file has overviews, and the warp shrinks the
    source by at least 2x (source pixels per destination pixel, from the global
    XSCALE/YSCALE, along the less shrunk axis), the overview gdalwarp's ``-ovr AUTO`` rule
    picks (`pipeline.warp.overviews.best_overview_level`: the coarsest overview whose
    decimation factor is below the shrink factor + 0.1) is opened with
    ``open_raster(path, overview_level=k)`` and warped onto that grid with XSCALE/YSCALE
    recomputed for its pixel size. The result then equals the whole-array warp of the
    overview's pixels (`pipeline.warp.overviews.overview_warp_spec`) for every chunking, and is
    close to, not equal to, the full-resolution warp (the overview's own resampling, e.g.
    ``gdaladdo -r average``, stands in for part of the warp's).
    """
    options = WarpOptions(
        resolution=resolution,  # type: ignore[arg-type]
        bounds=bounds,  # type: ignore[arg-type]
        shape=shape,
        resampling=resampling,
        src_nodata=src_nodata,
        dst_nodata=dst_nodata,
        target_aligned_pixels=target_aligned_pixels,
        error_threshold=error_threshold,
    )
    warn_if_chunk_dependent(options.resampling)
    spec = warp_spec(da, dst_crs, options)
    dtype = np.dtype(da.dtype)
    source_da = da
    if overviews:
        overview = _overview_source(da, spec)
        if overview is not None:
            source_da, spec = overview
    dst, count = spec.dst, spec.count
    if not hasattr(source_da.data, "dask"):
        source_da = source_da.chunk()
    data: dsa.Array = source_da.data
    file = file_source(source_da, lazy=True) if config.get("reproject.direct-reads") else None
    out_chunks = destination_chunks(chunks, spec, remote=file is not None and is_remote(file.path))
    windows = grid.source_windows(spec.src, dst, out_chunks, halo=spec.halo)

    name = f"pipeline-reproject-{tokenize(data.name, spec, out_chunks, dtype.str, file)}"
    dsk = build_graph(name, data, windows, out_chunks, spec, dtype.name, file)
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
    y, x = grid.pixel_center_coords(dst)
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
