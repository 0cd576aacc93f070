"""Write a (lazy) DataArray to a tiled GeoTIFF through a locked, atomic ``rio.to_raster``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError
from threading import Lock
from typing import Any, Union

import dask
import dask.base
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from dask.base import tokenize

from pipeline import chunking, config
from pipeline.errors import ClusterError
from pipeline.io.colorinterp import COLORINTERP_KEY
from pipeline.io.colormap import COLORMAP_KEY
from pipeline.io.locks import CompressingLock, write_lock
from pipeline.io.metadata import RasterMetadata, write_metadata
from pipeline.io.profile import creation_profile, output_driver
from pipeline.io.staged import (
    TEMP_SUFFIX,
    CogStep,
    check_output_path,
    publish,
    staging_profile,
    temp_path_for,
    write_staged,
)
from pipeline.preflight import ensure_cluster_ready

#: A local dask scheduler: a name ("sync", "threads") or a get function; None: the active one.
Scheduler = Union[str, Callable[..., Any], None]  # noqa: UP007

#: Also importable from here, where they used to live.
__all__ = [
    "TEMP_SUFFIX",
    "check_output_path",
    "creation_profile",
    "output_driver",
    "publish",
    "temp_path_for",
    "write_raster",
]


def _block_aligned(da: xr.DataArray, max_block: int) -> tuple[xr.DataArray, int, int]:
    """Rechunk ``da`` if needed so that every chunk is a whole number of TIFF tiles."""
    ys, xs = da.data.chunks[1], da.data.chunks[2]
    by = chunking.write_block_size(ys, max_block=max_block)
    bx = chunking.write_block_size(xs, max_block=max_block)
    if by and bx:
        return da, by, bx
    new: dict[str, Any] = {}
    if not by:
        by = max_block
        new["y"] = chunking.round_to_multiple(max(ys), by)
    if not bx:
        bx = max_block
        new["x"] = chunking.round_to_multiple(max(xs), bx)
    return da.chunk(new), by, bx


def _active_client() -> Any:
    """The distributed client dask would use right now, or None."""
    if "distributed" not in sys.modules:  # no client can exist: do not pay for the import
        return None
    scheduler = dask.base.get_scheduler()
    owner = getattr(scheduler, "__self__", None)
    from distributed import Client

    return owner if isinstance(owner, Client) else None


def _compute(delayed: Any, *, progress: bool, scheduler: Scheduler, client: Any) -> None:
    if scheduler is not None:
        dask.compute(delayed, scheduler=scheduler)
        return
    if client is not None:
        future = client.compute(delayed)
        if progress:
            from distributed import progress as show_progress

            show_progress(future)
        try:
            future.result()
        except CancelledError as err:  # distributed cancels every future when it loses
            if "scheduler-connection-lost" not in str(err):  # the scheduler's connection
                raise
            raise ClusterError(
                f"lost the connection to the scheduler at {client.scheduler.address!r} during "
                "the run; nothing was published: rerun once the scheduler is reachable"
            ) from err
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
    scheduler: Scheduler = None,
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
        Held while a chunk is written; GDAL compresses the chunk's tiles inside it on all the
        cores of the holding process once tasks wait for the lock
        (`pipeline.io.locks.CompressingLock`).
    progress : bool, default False
        Show a progress bar while computing.
    scheduler : str or callable, optional
        Compute with this local dask scheduler (``"sync"``, ``"threads"``, or a get function
        such as ``dask.threaded.get``) instead of the active one, e.g. inside a task already
        running on a worker.
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
    driver set explicitly, synced, and moved onto ``path`` only after every chunk succeeded
    (`pipeline.io.staged.write_staged`, the path batch mode's tiles take too).
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
    # Compress on all cores while holding the lock, unless the chunks are written one after
    # the other in this thread anyway ("sync": a batch tile inside its task, whose parallelism
    # is the other tasks) or the caller asked for no lock (False).
    if lock is not False and scheduler != "sync":
        lock = CompressingLock(lock, int(config.get("write.compress-threads")) or None)
    if not hasattr(da.data, "dask"):
        da = da.chunk()
    block = int(max_block or config.get("write.max-block"))
    da, by, bx = _block_aligned(da, block)
    options = staging_profile(
        da.dtype,
        cog=cog,
        compress=compress,
        predictor=predictor,
        creation_options=creation_options,
    )
    metadata = RasterMetadata(  # tags and band descriptions: rioxarray writes them
        colormap=da.encoding.get(COLORMAP_KEY), colorinterp=da.encoding.get(COLORINTERP_KEY)
    )

    def write(tmp: str) -> None:
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
        write_metadata(tmp, metadata, count=int(da.shape[0]), dtype=da.dtype)

    step: CogStep | None = None
    if cog:
        step = CogStep(
            dtype=da.dtype,
            height=da.shape[1],
            width=da.shape[2],
            blocksize=block,
            overview_resampling=overview_resampling,
            compress=compress,
            predictor=predictor,
            creation_options=creation_options,
            threads=1 if scheduler == "sync" else _local_threads(),
            reuse_freed_memory=True,
        )
    return write_staged(dst, write, overwrite=overwrite, cog=step, verify=before_publish)


def _local_threads() -> int:
    """Threads for client-side finishing work (the cluster is idle by then)."""
    from dask.system import CPU_COUNT

    return max(1, int(CPU_COUNT))
