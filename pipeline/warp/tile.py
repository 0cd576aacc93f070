"""Warp one window or one whole tile: the step every reprojection task and batch tile runs.

`warp_and_cast` is the single warp step: a destination window from the source pixels that
cover it, in the output dtype. The dask graph calls it from `warp_file_window` (a chunk whose
padded source window is read straight from the file) or on assembled source chunks; batch mode
calls it from `warp_tile` (a whole small tile read with rasterio, no xarray, no dask).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from pipeline.errors import CRSInputError, RasterInputError
from pipeline.io.colorinterp import read_colorinterp
from pipeline.io.colormap import read_colormap
from pipeline.io.files import (
    FileSource,
    check_input_file,
    display_path,
    is_remote,
    overview_shapes,
    read_source_window,
    remote_cause,
    retried,
)
from pipeline.io.metadata import RasterMetadata
from pipeline.io.vsi import retry_interrupted
from pipeline.warp.engine import warp_window
from pipeline.warp.grid import GridSpec, Window
from pipeline.warp.overviews import overview_level_for, overview_warp_spec
from pipeline.warp.spec import WarpOptions, WarpSpec, make_spec


def warp_and_cast(
    spec: WarpSpec,
    source: np.ndarray,
    source_window: Window,
    dst_window: Window,
    out_dtype: str,
) -> np.ndarray:
    """`pipeline.warp.engine.warp_window`, cast to ``out_dtype`` (bool is warped as uint8)."""
    out = warp_window(spec, source, source_window, dst_window)
    return out if out.dtype == np.dtype(out_dtype) else out.astype(out_dtype)


def warp_file_window(
    source: FileSource,
    spec: WarpSpec,
    source_window: Window,
    dst_window: Window,
    out_dtype: str,
) -> np.ndarray:
    """Read ``source_window`` straight from ``source``'s file and warp ``dst_window``."""
    rows = (source_window.row0, source_window.row1)
    cols = (source_window.col0, source_window.col1)
    pixels = read_source_window(source, rows, cols)
    return warp_and_cast(spec, pixels, source_window, dst_window, out_dtype)


@dataclass
class WarpedTile:
    """A whole tile warped in memory, with the metadata its output file carries.

    Attributes
    ----------
    data : numpy.ndarray
        ``(band, rows, cols)`` on ``spec.dst``, in the source dtype.
    spec : WarpSpec
        The warp that made it (of the overview read, if one was).
    metadata : RasterMetadata
        The source's tags, band descriptions, colour table and colour interpretation.
    """

    data: np.ndarray
    spec: WarpSpec
    metadata: RasterMetadata = field(default_factory=RasterMetadata)


def _read_all(ds: Any, path: str, overview_level: int | None = None) -> np.ndarray:
    """All of ``ds``; a remote read cut short is retried (`pipeline.io.vsi`)."""

    def read(attempt: int) -> np.ndarray:
        if not attempt:
            data: np.ndarray = ds.read()
            return data
        kwargs = {} if overview_level is None else {"overview_level": overview_level}
        with rasterio.open(path, **kwargs) as again:
            data = again.read()
        return data

    try:
        return retry_interrupted(path, read) if is_remote(path) else read(0)
    except RasterioError as err:
        if is_remote(path):
            raise RasterInputError(
                f"{display_path(path)}: {remote_cause(err)}{retried(err)}"
            ) from err
        raise RasterInputError(
            f"{path}: corrupt or unreadable data ({' '.join(str(err).split())})"
        ) from err


def warp_tile(
    path: str | os.PathLike[str], dst_crs: Any, options: WarpOptions, *, overviews: bool = True
) -> WarpedTile:
    """Read a whole raster file and warp it whole, as `pipeline.reproject` would.

    The result equals `pipeline.reproject` of ``open_raster(path)`` with the same options,
    whatever its chunking; for an output at most `pipeline.warp.grid.WARP_WHOLE_ROW_WIDTH`
    wide it also equals GDAL's own whole-tile warp with the same options. A warp shrinking
    the source 2x or more reads the overview ``gdalwarp -ovr AUTO`` would
    (`pipeline.warp.overviews`), as `pipeline.reproject` does.

    Raises
    ------
    RasterInputError, CRSInputError, ReprojectError
        Missing, unreadable or corrupt file, no CRS, or options that do not fit the raster.
    """
    src_path = check_input_file(path)
    try:
        with rasterio.open(src_path) as ds:
            if ds.crs is None:
                raise CRSInputError(
                    f"{src_path}: no CRS; assign one (da.rio.write_crs(...)) before reprojecting"
                )
            src = GridSpec(ds.crs, ds.transform, ds.width, ds.height)
            spec = make_spec(
                src, np.dtype(ds.dtypes[0]), ds.count, ds.nodata, dst_crs, options, source=src_path
            )
            metadata = RasterMetadata(
                tags=ds.tags(),
                descriptions=tuple(ds.descriptions),
                colormap=read_colormap(ds),
                colorinterp=read_colorinterp(ds),
            )
            shapes = overview_shapes(src_path) if overviews and ds.overviews(1) else []
            level = overview_level_for(spec, src.width, [w for _, w in shapes])
            if level is None:
                data = _read_all(ds, src_path)
        if level is not None:
            spec = overview_warp_spec(spec, *shapes[level])
            with rasterio.open(src_path, overview_level=level) as ovr:
                data = _read_all(ovr, src_path, level)
    except RasterioError as err:
        if is_remote(src_path):
            raise RasterInputError(f"{display_path(src_path)}: {remote_cause(err)}") from err
        raise RasterInputError(f"{src_path}: not a readable raster ({err})") from err
    whole_src = Window(0, spec.src.height, 0, spec.src.width)
    whole_dst = Window(0, spec.dst.height, 0, spec.dst.width)
    warped = warp_and_cast(spec, data, whole_src, whole_dst, data.dtype.name)
    return WarpedTile(warped, spec, metadata)


__all__ = ["WarpedTile", "warp_and_cast", "warp_file_window", "warp_tile"]
