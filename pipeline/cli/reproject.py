"""``pipeline reproject``: warp a raster to another CRS, chunk by chunk, and write it."""

from __future__ import annotations

import os
import time
from typing import Any

import click

from pipeline.cli.options import (
    cluster_options,
    cluster_requested,
    echo_written,
    error_threshold_opt,
    execution,
    output_options,
    overwrite_opt,
    param_opt,
    write_options,
)
from pipeline.warp.resampling import METHODS

#: Target size of the source chunks the command reads (all bands together).
SOURCE_CHUNK_BYTES = "4MiB"

#: Inputs of at most this many pixels (one default destination chunk) are warped whole in
#: this thread, without a dask graph: the dask path would run one task anyway.
ONE_BLOCK_PIXELS = 1024 * 1024

#: Resampling names offered (rasterio's names for GDAL's warp kernels; a light import).
RESAMPLING_CHOICES = tuple(METHODS)


def _resolution(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[float, ...] | None:
    """``--resolution 30``, ``--resolution 30 --resolution 20`` or ``--resolution 30,20``."""
    if not values:
        return None
    parts = [p for v in values for p in v.replace(",", " ").split()]
    try:
        numbers = tuple(float(p) for p in parts)
    except ValueError:
        raise click.BadParameter(f"expected numbers, got {' '.join(values)!r}") from None
    if len(numbers) not in (1, 2) or not all(n > 0 for n in numbers):
        raise click.BadParameter("give one or two positive pixel sizes (x, y)")
    return numbers


def _one_block(path: str) -> bool:
    """True for a local file of at most `ONE_BLOCK_PIXELS` pixels (False when it cannot be
    opened: the full path then reports the problem)."""
    import rasterio
    from rasterio.errors import RasterioError

    from pipeline.io.files import is_remote

    if is_remote(path) or not os.path.isfile(path):
        return False
    try:
        with rasterio.open(path) as ds:
            return bool(ds.width * ds.height <= ONE_BLOCK_PIXELS)
    except RasterioError:
        return False


def _reproject_one_block(
    input_path: str,
    output_path: str,
    dst_crs: str,
    *,
    overwrite: bool,
    write_kw: dict[str, Any],
    overviews: bool,
    **warp: Any,
) -> None:
    """A one-block input: warped whole in this thread (`pipeline.batch.reproject_file`, the
    batch tile path), with no dask graph, so the command starts as fast as ``rio warp``."""
    from pipeline.batch import reproject_file
    from pipeline.cluster import run_here
    from pipeline.io.staged import check_output_path
    from pipeline.warp.grid import parse_crs
    from pipeline.warp.spec import WarpOptions

    crs = parse_crs(dst_crs)
    options = WarpOptions(**warp)
    out = check_output_path(output_path, overwrite=overwrite)
    with run_here():
        start = time.perf_counter()
        reproject_file(
            input_path,
            out,
            crs.to_wkt(),
            options,
            overwrite=overwrite,
            overviews=overviews,
            **write_kw,
        )
        seconds = time.perf_counter() - start
    echo_written(out, write_kw)
    import rasterio

    with rasterio.open(out) as ds:
        width, height, count = ds.width, ds.height, ds.count
    click.echo(
        f"{width} x {height} pixels x {count} bands in {crs.to_string()}, "
        f"{options.resampling}, {seconds:.2f} s (one block, warped whole in this process)"
    )


@click.command("reproject")
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=True))
@click.argument("output_path", metavar="OUTPUT", type=click.Path(dir_okay=True))
@click.option(
    "--dst-crs",
    required=True,
    metavar="CRS",
    help="Target CRS: EPSG:3857, an authority code, a PROJ string or WKT.",
)
@click.option(
    "--resolution",
    "--res",
    "resolution",
    multiple=True,
    callback=_resolution,
    metavar="R",
    help="Target pixel size in target units: one value, or x and y (repeat or 'X,Y').",
)
@click.option(
    "--bounds",
    nargs=4,
    type=float,
    default=None,
    metavar="LEFT BOTTOM RIGHT TOP",
    help="Target extent in target CRS units.",
)
@click.option(
    "--resampling",
    type=click.Choice(RESAMPLING_CHOICES),
    default="nearest",
    show_default=True,
    help="Resampling method.",
)
@click.option("--dst-nodata", type=float, default=None, help="Target nodata value.")
@click.option(
    "--tap",
    "--target-aligned-pixels",
    "tap",
    is_flag=True,
    help="Align the target extent to the resolution (gdalwarp -tap).",
)
@click.option(
    "--overviews/--no-overviews",
    default=True,
    show_default=True,
    help="When the output shrinks the input by 2x or more, read the input's best overview "
    "(like gdalwarp -ovr AUTO); --no-overviews always reads full resolution (-ovr NONE). "
    "The output grid is the same either way.",
)
@error_threshold_opt
@click.option("--kernel", "kernel_name", help="Apply this kernel before reprojecting.")
@param_opt
@click.option(
    "--chunks",
    type=click.IntRange(min=1),
    help="Target chunk edge in pixels [default: 1024].",
)
@overwrite_opt
@output_options
@cluster_options
@click.option("--progress/--no-progress", default=True, show_default=True)
def reproject(
    input_path: str,
    output_path: str,
    dst_crs: str,
    resolution: tuple[float, ...] | None,
    bounds: tuple[float, float, float, float] | None,
    resampling: str,
    dst_nodata: float | None,
    tap: bool,
    overviews: bool,
    error_threshold: float,
    kernel_name: str | None,
    params: tuple[str, ...],
    chunks: int | None,
    overwrite: bool,
    output_format: str,
    creation_options: tuple[str, ...],
    overview_resampling: str | None,
    progress: bool,
    **cluster: Any,
) -> None:
    """Reproject INPUT to --dst-crs and write OUTPUT atomically.

    The result equals one GDAL warp of the whole raster with the same options, pixel for
    pixel, however it is chunked.
    """
    if not (kernel_name or params or chunks or cluster_requested(cluster)) and _one_block(
        input_path
    ):
        _reproject_one_block(
            input_path,
            output_path,
            dst_crs,
            overwrite=overwrite,
            write_kw=write_options(output_format, creation_options, overview_resampling),
            overviews=overviews,
            resolution=resolution,
            bounds=bounds,
            resampling=resampling,
            dst_nodata=dst_nodata,
            target_aligned_pixels=tap,
            error_threshold=error_threshold,
        )
        return

    import dask.config

    from pipeline.io.open import open_raster
    from pipeline.io.write import check_output_path, write_raster
    from pipeline.warp.grid import parse_crs
    from pipeline.warp.reproject import reproject as reproject_array

    # Everything that can be checked is checked before a cluster starts.
    crs = parse_crs(dst_crs)
    # Small source chunks whatever the input size: each destination chunk then holds only
    # the few MiB of source under its footprint, so memory does not grow with the input.
    with dask.config.set({"pipeline.open.chunk-bytes": SOURCE_CHUNK_BYTES}):
        da = open_raster(input_path)
    if kernel_name:  # numba and the kernels are imported only for this
        from pipeline.apply import apply_kernel
        from pipeline.kernels import get_kernel, parse_param_strings

        spec = get_kernel(kernel_name)
        da = apply_kernel(da, spec, **parse_param_strings(spec, params))
    elif params:
        raise click.UsageError("--param needs --kernel")
    result = reproject_array(
        da,
        crs,
        resolution=resolution,
        bounds=bounds,
        resampling=resampling,
        dst_nodata=dst_nodata,
        chunks=chunks,
        target_aligned_pixels=tap,
        overviews=overviews,
        error_threshold=error_threshold,
    )
    check_output_path(output_path, overwrite=overwrite)
    write_kw = write_options(output_format, creation_options, overview_resampling)
    nbytes = max(da.nbytes, result.nbytes)
    with execution(cluster, nbytes, progress=progress) as run_kw:
        start = time.perf_counter()
        out = write_raster(result, output_path, overwrite=overwrite, **run_kw, **write_kw)
        seconds = time.perf_counter() - start
    height, width = result.sizes["y"], result.sizes["x"]
    echo_written(out, write_kw)
    click.echo(
        f"{width} x {height} pixels x {result.sizes['band']} bands in {crs.to_string()}, "
        f"{resampling}, {seconds:.2f} s"
    )
