"""Write a (lazy) DataArray to a tiled GeoTIFF through a locked, atomic ``rio.to_raster``."""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Callable, Mapping
from threading import Lock
from typing import Any

import dask
import dask.base
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from dask.base import tokenize

from pipeline import config, grid
from pipeline.errors import OutputError, OutputExistsError
from pipeline.io.colorinterp import COLORINTERP_KEY, write_colorinterp
from pipeline.io.colormap import COLORMAP_KEY, write_colormap
from pipeline.io.locks import write_lock
from pipeline.preflight import ensure_cluster_ready

#: Suffix of the temporary files written next to the destination; a crashed run's leftovers
#: carry it and can be removed safely.
TEMP_SUFFIX = ".pipeline-tmp"


def temp_path_for(path: str) -> str:
    """A unique, hidden temporary name in the destination's folder (same filesystem)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool = False) -> str:
    """Validate that ``path`` can be written; return it as an absolute path.

    Raises `OutputExistsError` when it exists and ``overwrite`` is false, and `OutputError` when
    it is a directory or its folder is missing or not writable.
    """
    p = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(p)
    if os.path.isdir(p):
        raise OutputError(f"{p}: is a directory; give a file name for the output")
    if os.path.lexists(p) and not overwrite:
        raise OutputExistsError(
            f"{p}: output exists; pass overwrite=True (--overwrite) to replace it"
        )
    if not os.path.isdir(folder):
        raise OutputError(f"{p}: output folder {folder!r} does not exist")
    probe = temp_path_for(p)
    try:
        with open(probe, "wb"):
            pass
    except OSError as err:
        raise OutputError(f"{p}: output folder is not writable ({err.strerror})") from err
    os.unlink(probe)
    return p


def _default_predictor(dtype: np.dtype[Any], compress: str | None) -> int | None:
    if not compress or compress.lower() not in {"deflate", "lzw", "zstd", "lzma"}:
        return None
    if dtype.kind == "f" and dtype.itemsize in (2, 4, 8):
        return 3
    if dtype.kind in "iu":
        return 2
    return None


def creation_profile(
    dtype: np.dtype[Any],
    *,
    compress: str | None = None,
    predictor: int | None = None,
    creation_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """GeoTIFF creation options every output gets: compression, a predictor suited to the
    dtype, ``BIGTIFF`` (from ``pipeline.write.*``) and the caller's extra options."""
    extra = {k.upper(): v for k, v in (creation_options or {}).items()}
    compress = str(extra.pop("COMPRESS", None) or compress or config.get("write.compress"))
    options: dict[str, Any] = {"COMPRESS": compress, "BIGTIFF": config.get("write.bigtiff")}
    options.update(extra)
    pred = predictor if predictor is not None else _default_predictor(dtype, compress)
    if pred is not None:
        options.setdefault("PREDICTOR", pred)
    return options


def _block_aligned(da: xr.DataArray, max_block: int) -> tuple[xr.DataArray, int, int]:
    """Rechunk ``da`` if needed so that every chunk is a whole number of TIFF tiles."""
    ys, xs = da.data.chunks[1], da.data.chunks[2]
    by = grid.write_block_size(ys, max_block=max_block)
    bx = grid.write_block_size(xs, max_block=max_block)
    if by and bx:
        return da, by, bx
    new: dict[str, Any] = {}
    if not by:
        by = max_block
        new["y"] = grid.round_to_multiple(max(ys), by)
    if not bx:
        bx = max_block
        new["x"] = grid.round_to_multiple(max(xs), bx)
    return da.chunk(new), by, bx


def _active_client() -> Any:
    """The distributed client dask would use right now, or None."""
    scheduler = dask.base.get_scheduler()
    owner = getattr(scheduler, "__self__", None)
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    return owner if isinstance(owner, Client) else None


def _compute(delayed: Any, *, progress: bool, scheduler: str | None, client: Any) -> None:
    if scheduler is not None:
        dask.compute(delayed, scheduler=scheduler)
        return
    if client is not None:
        future = client.compute(delayed)
        if progress:
            from distributed import progress as show_progress

            show_progress(future)
        future.result()
        return
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            dask.compute(delayed)
    else:
        dask.compute(delayed)


def _written(block: Any) -> Any:
    """Identity on the (empty) result of storing one chunk; gives the fused task its name."""
    return block


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: str, dst: str, *, overwrite: bool) -> None:
    """Move the finished temporary file onto ``dst`` atomically."""
    if overwrite:
        os.replace(tmp, dst)
        return
    try:
        os.link(tmp, dst)  # atomic and refuses to clobber a file created meanwhile
    except FileExistsError as err:
        raise OutputExistsError(f"{dst}: output appeared while writing; left untouched") from err
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(dst):
            raise OutputExistsError(
                f"{dst}: output appeared while writing; left untouched"
            ) from err
        os.replace(tmp, dst)
        return
    os.unlink(tmp)


def write_raster(
    da: xr.DataArray,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    compress: str | None = None,
    predictor: int | None = None,
    max_block: int | None = None,
    creation_options: Mapping[str, Any] | None = None,
    lock: Any = None,
    progress: bool = False,
    scheduler: str | None = None,
    before_publish: Callable[[str], None] | None = None,
    driver: str = "GTiff",
    overview_resampling: str | None = None,
) -> str:
    """Compute ``da`` and write it as a tiled GeoTIFF (or COG) that appears atomically at ``path``.

    Parameters
    ----------
    da : xarray.DataArray
        ``(band, y, x)`` array with rioxarray georeferencing (lazy or in memory).
    path : str or os.PathLike
        Destination file.
    overwrite : bool, default False
        Replace an existing ``path``; otherwise an existing file is an error and is never
        touched.
    compress : str, optional
        GDAL compression (default ``pipeline.write.compress``, deflate); a predictor suited to
        the dtype is added unless ``predictor`` is given.
    predictor : int, optional
        TIFF predictor (2 integer, 3 floating point).
    max_block : int, optional
        Largest TIFF tile edge (default ``pipeline.write.max-block``, 512). Tiles always divide
        the dask chunks so each chunk writes whole tiles; the array is rechunked if that cannot
        hold.
    creation_options : mapping, optional
        Extra GDAL creation options (``BIGTIFF`` defaults to ``IF_SAFER``).
    lock : lock, optional
        Default: a lock matched to the active scheduler (``distributed.Lock`` on a cluster).
    progress : bool, default False
        Show a progress bar while computing.
    scheduler : str, optional
        Compute with this local dask scheduler (``"sync"``, ``"threads"``) instead of the active
        one, e.g. inside a task already running on a worker.
    before_publish : callable, optional
        Called with the finished temporary file's path; raising aborts the write (the temporary
        file is removed and nothing appears at ``path``). Batch mode verifies tiles here.
    driver : {"GTiff", "COG"}, default "GTiff"
        ``"COG"`` writes a Cloud-Optimized GeoTIFF with real overviews (see
        `pipeline.io.cog`): ``compress``, ``predictor`` and ``creation_options`` then apply to
        GDAL's COG driver (e.g. ``LEVEL``, ``OVERVIEW_COMPRESS``), ``max_block`` is its
        ``BLOCKSIZE``, and the result must pass rio-cogeo's strict validation.
    overview_resampling : str, optional
        COG only: resampling for the overviews (default ``average`` for floating-point data,
        ``nearest`` for integer data, which is often classes).

    Returns
    -------
    str
        The absolute output path.

    Notes
    -----
    Data is written under a unique hidden temporary name in the destination folder with the
    driver set explicitly, synced, and moved onto ``path`` only after every chunk succeeded.
    On any failure (including Ctrl-C) the temporary file is removed and an existing output is
    left untouched. On a distributed cluster, worker package versions and the visibility of the
    output folder from every worker are checked first (once per client and folder).
    CRS, transform, nodata, dtype, band descriptions and tags are written, and the colour
    table of a single-band uint8/uint16 array from `open_raster` (or `reproject` of one).

    For a COG the chunks are first written the same way into a staging GeoTIFF in the
    destination folder; overviews are computed from its full-resolution data down to the level
    that fits one block; GDAL's COG driver copies it into the COG layout under a second
    temporary name; only a file that passes strict validation is published. Both temporary
    files are removed whatever happens.
    """
    cog = output_driver(driver) == "COG"
    if cog:
        from pipeline.io.cog import resampling_for_overviews

        resampling_for_overviews(overview_resampling, da.dtype)  # fail before any work
    dst = check_output_path(path, overwrite=overwrite)
    client = _active_client() if scheduler is None else None
    if client is not None:
        ensure_cluster_ready(client, os.path.dirname(dst))
    if lock is None:
        lock = write_lock(f"pipeline-write-{tokenize(dst)}") if scheduler is None else Lock()
    if not hasattr(da.data, "dask"):
        da = da.chunk()
    block = int(max_block or config.get("write.max-block"))
    da, by, bx = _block_aligned(da, block)
    if cog:
        from pipeline.io.cog import staging_options

        options = creation_profile(da.dtype, creation_options=staging_options())
    else:
        options = creation_profile(
            da.dtype, compress=compress, predictor=predictor, creation_options=creation_options
        )
    tmp = temp_path_for(dst)
    final = temp_path_for(dst) if cog else tmp
    try:
        stored = da.rio.to_raster(
            tmp,
            driver="GTiff",
            tiled=True,
            blockxsize=bx,
            blockysize=by,
            lock=lock,
            compute=False,
            recalc_transform=False,  # write the exact GeoTransform, not one rebuilt from coords
            **options,
        )
        # One task per chunk, fused from read -> kernel/warp -> locked store, named for the
        # dashboard's task stream and progress bars (dask names it "store-map-..." otherwise).
        named = stored.map_blocks(
            _written,
            name=f"pipeline-write-{tokenize(dst, stored.name)}",
            meta=stored._meta,
            dtype=stored.dtype,
        )
        _compute(named, progress=progress, scheduler=scheduler, client=client)
        write_colormap(tmp, da.encoding.get(COLORMAP_KEY), int(da.shape[0]), da.dtype)
        write_colorinterp(tmp, da.encoding.get(COLORINTERP_KEY), int(da.shape[0]))
        if cog:
            from pipeline.io.cog import finalize_cog
            from pipeline.malloc import reuse_freed_memory

            with reuse_freed_memory():
                finalize_cog(
                    tmp,
                    final,
                    dtype=da.dtype,
                    height=da.shape[1],
                    width=da.shape[2],
                    blocksize=block,
                    overview_resampling=overview_resampling,
                    compress=compress,
                    predictor=predictor,
                    creation_options=creation_options,
                    threads=1 if scheduler == "sync" else _local_threads(),
                    label=dst,
                )
        _fsync(final)
        if before_publish is not None:
            before_publish(final)
        publish(final, dst, overwrite=overwrite)
    finally:
        for leftover in {tmp, final}:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
    return dst


def output_driver(driver: str) -> str:
    """``"GTiff"`` or ``"COG"`` for ``driver`` in any case; anything else is an `OutputError`."""
    names = {"GTIFF": "GTiff", "COG": "COG"}
    if driver.upper() not in names:
        raise OutputError(f"unsupported output driver {driver!r}; use 'GTiff' or 'COG'")
    return names[driver.upper()]


def _local_threads() -> int:
    """Threads for client-side finishing work (the cluster is idle by then)."""
    from dask.system import CPU_COUNT

    return max(1, int(CPU_COUNT))
