"""Open a raster as a lazy, block-aligned, chunked rioxarray DataArray."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from typing import Any, Union

import dask.array as da
import numpy as np
import rasterio
import rioxarray
import xarray as xr
from dask.base import tokenize
from dask.blockwise import Blockwise
from dask.utils import parse_bytes
from rasterio.errors import RasterioError

from pipeline import chunking, config
from pipeline.errors import ChunkingError, PipelineWarning, RasterInputError
from pipeline.io import files
from pipeline.io.colorinterp import COLORINTERP_KEY, read_colorinterp
from pipeline.io.colormap import COLORMAP_KEY, read_colormap
from pipeline.io.files import (
    FileSource,
    check_input_file,
    file_identity,
    is_remote,
    overview_shapes,
)

ChunksArg = Union[str, int, tuple[int, int], Mapping[str, int], None]  # noqa: UP007

# GeoTIFF tiles are multiples of 16: chunks on that grid can be written without re-tiling.
_WRITE_ALIGN = 16


def file_source(da: xr.DataArray, *, lazy: bool = False) -> FileSource | None:
    """The file ``da`` reads, if ``da`` is still exactly the array `open_raster` returned.

    Encodings survive many xarray operations, so the recorded source is trusted only when
    ``da``'s dask layer and shape are the ones `open_raster` built: any kernel, slice,
    rechunk or arithmetic gives a new layer name, and then None is returned. With
    ``lazy=True`` None is also returned once the chunks are in memory (``da.persist()``
    keeps the layer name): reading the file again would waste them.
    """
    source = da.encoding.get("pipeline_source")
    if not isinstance(source, FileSource):
        return None
    name = getattr(da.data, "name", None)
    if name != source.layer or tuple(da.shape) != source.shape:
        return None
    if da.encoding.get("source") != source.path:
        return None
    if lazy and not isinstance(da.data.dask.layers.get(name), Blockwise):
        return None
    return source


def user_name(da: xr.DataArray) -> Any:
    """``da.name`` unless xarray invented it from the dask array's name (``pipeline-open-...``).

    ``xr.DataArray(dask_array)`` takes the dask graph name as the array name when none is
    given, and rioxarray's ``to_raster`` writes the name as band descriptions.
    """
    return None if da.name == getattr(da.data, "name", None) else da.name


def _read_chunk(
    path: str,
    identity: tuple[Any, ...],
    indexes: list[int],
    dtype: str,
    overview_level: int | None = None,
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    """Read one chunk (a ``map_blocks`` callable)."""
    if block_info is None:  # dask passes it to every map_blocks callable that accepts it
        raise TypeError(
            f"{path}: _read_chunk needs dask's block_info to know which chunk to read; "
            "call it through dask.array.map_blocks"
        )
    (b0, b1), rows, cols = block_info[None]["array-location"]
    return files.read_window(path, identity, indexes[b0:b1], dtype, overview_level, rows, cols)


def _normalize_chunks(
    chunks: ChunksArg,
    shape: tuple[int, int, int],
    block_yx: tuple[int, int],
    itemsize: int,
    path: str,
) -> tuple[chunking.Chunks1D, chunking.Chunks1D, chunking.Chunks1D]:
    count, height, width = shape
    by, bx = block_yx
    band_chunks: chunking.Chunks1D = (count,)
    # Prefer units that are multiples of both the file's blocks and the 16-pixel write grid.
    uy, ux = (
        math.lcm(b, _WRITE_ALIGN) if math.lcm(b, _WRITE_ALIGN) <= 1024 else b for b in (by, bx)
    )
    if chunks is None or chunks == "auto":
        # About chunk-bytes per chunk, but at least min-chunks chunks so that small rasters
        # still spread over every core (never less than one block per chunk).
        total = itemsize * count * height * width
        target = min(
            parse_bytes(config.get("open.chunk-bytes")),
            max(1, total // int(config.get("open.min-chunks"))),
        )
        ys, xs = chunking.auto_spatial_chunks(
            (height, width),
            (uy, ux if bx < width else bx),
            bytes_per_pixel=itemsize * count,
            target_bytes=target,
        )
        return band_chunks, ys, xs
    if isinstance(chunks, int):
        cy, cx = chunks, chunks
    elif isinstance(chunks, Mapping):
        unknown = set(chunks) - {"band", "y", "x"}
        if unknown:
            raise ChunkingError(f"{path}: unknown chunk dimension(s) {sorted(unknown)!r}")
        cy, cx = int(chunks.get("y", height)), int(chunks.get("x", width))
        if "band" in chunks:
            band_chunks = chunking.regular_chunks(count, int(chunks["band"]))
    elif isinstance(chunks, tuple) and len(chunks) == 2:
        cy, cx = int(chunks[0]), int(chunks[1])
    else:
        raise ChunkingError(
            f"{path}: chunks must be 'auto', an int, (y, x) or a dict, got {chunks!r}"
        )
    if cy <= 0 or cx <= 0:
        raise ChunkingError(f"{path}: chunk sizes must be positive, got {(cy, cx)!r}")
    ry = cy if cy >= height else chunking.round_to_multiple(cy, by)
    rx = cx if cx >= width else chunking.round_to_multiple(cx, bx)
    if (ry, rx) != (cy, cx):
        warnings.warn(
            f"{path}: chunks {(cy, cx)!r} are not multiples of the file's {(by, bx)!r} blocks; "
            f"using {(ry, rx)!r}",
            PipelineWarning,
            stacklevel=3,
        )
    return band_chunks, chunking.regular_chunks(height, ry), chunking.regular_chunks(width, rx)


def open_raster(
    path: str | os.PathLike[str],
    *,
    chunks: ChunksArg = "auto",
    bands: list[int] | None = None,
    overview_level: int | None = None,
) -> xr.DataArray:
    """Open a raster file as a lazy, block-aligned dask-backed DataArray.

    Parameters
    ----------
    path : str or os.PathLike
        Any raster GDAL reads (GeoTIFF, COG, ...): a local file, a URL read with HTTP range
        requests (``https://...``, ``http://...``, or GDAL's ``/vsicurl/...``), or an object
        store URL GDAL maps (``s3://`` -> ``/vsis3/``, ``gs://``, ``az://``; untested here).
    chunks : "auto", int, (y, x) tuple or dict, optional
        "auto" (default) picks chunks of about ``pipeline.open.chunk-bytes`` (32 MiB, all bands
        together; smaller for small rasters so there are ``pipeline.open.min-chunks`` of them)
        made of whole internal blocks (full-width row bands for striped files). Explicit sizes
        that are not multiples of the block shape are rounded to the nearest multiple with a
        `PipelineWarning`. The band axis is one chunk unless ``{"band": n}`` is given.
    bands : list of int, optional
        1-based band indexes to read (default: all).
    overview_level : int, optional
        Read this overview instead of the full-resolution image: 0 is the first (finest)
        overview, as ``rasterio.open(path, overview_level=...)``. The array then has the
        overview's shape and a transform scaled by ``full size / overview size`` (the same
        extent), and chunks align to the overview's blocks. Default: full resolution.

    Returns
    -------
    xarray.DataArray
        Dims ``("band", "y", "x")``, coordinates, CRS, transform, nodata (``_FillValue``), scale
        and offset, band descriptions (``long_name``) and tags as rioxarray sets them. Nothing is
        read until computed; nodata values are kept as stored (not masked). The dask name is
        ``pipeline-open-<token>`` where the token depends on the file's path, inode, size and
        modification time, so a rewritten file never reuses cached results.
        A remote file's token depends on its URL only. ``encoding["source"]`` is the absolute
        path (the GDAL path, such as ``/vsicurl/https://...``, of a remote file) and
        ``encoding["pipeline_source"]`` a `FileSource` (see `file_source`).

    Raises
    ------
    RasterInputError
        Missing file, directory, empty file, a file GDAL cannot open as a raster, a file of
        several images (subdatasets: multi-page TIFF, netCDF variables), or an
        ``overview_level`` the file does not have.
    ChunkingError
        Malformed ``chunks``.
    """
    p = check_input_file(path)
    open_kwargs: dict[str, Any] = {}
    if overview_level is not None:
        if isinstance(overview_level, bool) or not isinstance(overview_level, int):
            raise RasterInputError(f"{p}: overview_level must be an int, got {overview_level!r}")
        available = overview_shapes(p)
        if not 0 <= overview_level < len(available):
            raise RasterInputError(
                f"{p}: no overview level {overview_level!r}; the file has {len(available)} "
                f"overview(s) (levels 0..{len(available) - 1})"
            )
        open_kwargs["overview_level"] = overview_level
    try:
        with rasterio.open(p, **open_kwargs) as ds:
            count, height, width = ds.count, ds.height, ds.width
            block_yx = ds.block_shapes[0]
            dtypes = set(ds.dtypes)
            indexes = list(bands) if bands is not None else list(range(1, count + 1))
            in_range = bool(indexes) and all(1 <= i <= count for i in indexes)
            colormap = read_colormap(ds, indexes[0]) if in_range else None
            colorinterp = read_colorinterp(ds, indexes) if in_range else None
            subdatasets = list(ds.subdatasets)
    except RasterioError as err:
        raise RasterInputError(f"{p}: not a readable raster ({err})") from err
    if len(dtypes) != 1:
        raise RasterInputError(f"{p}: bands have different data types {sorted(dtypes)!r}")
    dtype = np.dtype(dtypes.pop())
    if not in_range:
        raise RasterInputError(f"{p}: band indexes {indexes!r} out of range 1..{count}")

    shape = (len(indexes), height, width)
    band_c, ys, xs = _normalize_chunks(chunks, shape, block_yx, dtype.itemsize, p)
    identity = file_identity(p)
    token = tokenize(identity, indexes, (band_c, ys, xs), overview_level)
    data = da.map_blocks(
        _read_chunk,
        p,
        identity,
        indexes,
        dtype.str,
        overview_level,
        name=f"pipeline-open-{token}",
        chunks=(band_c, ys, xs),
        dtype=dtype,
        meta=np.empty((0, 0, 0), dtype=dtype),
    )
    try:
        template = rioxarray.open_rasterio(p, chunks=None, cache=False, lock=False, **open_kwargs)
    except RasterioError as err:
        raise RasterInputError(f"{p}: not a readable raster ({err})") from err
    if not isinstance(template, xr.DataArray):
        # rioxarray opens a file with subdatasets (multi-page TIFF, netCDF/HDF variables) as
        # Dataset(s) of all of them: we read one image per file.
        for opened in template if isinstance(template, list) else [template]:
            opened.close()
        example = f" such as {subdatasets[0]!r}" if subdatasets else ""
        raise RasterInputError(
            f"{p}: holds {len(subdatasets)} images (subdatasets{example}); open_raster reads "
            "files of one image: extract the one you want first (gdal_translate)"
        )
    if bands is not None:
        template = template.sel(band=indexes)
    result = xr.DataArray(
        data,
        coords=template.coords,
        dims=template.dims,
        attrs=dict(template.attrs),
    )
    result.name = template.name  # not the dask name xarray would infer
    absolute = p if is_remote(p) else os.path.abspath(p)
    result.encoding = {
        **template.encoding,
        "source": absolute,
        "pipeline_source": FileSource(
            absolute, tuple(indexes), overview_level, str(data.name), shape, dtype.str, identity
        ),
    }
    if colormap is not None and len(indexes) == 1:
        result.encoding[COLORMAP_KEY] = colormap
    if colorinterp is not None:
        result.encoding[COLORINTERP_KEY] = colorinterp
    template.close()
    return result
