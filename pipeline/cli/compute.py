"""``pipeline compute``: run a kernel over a raster and write the result."""

from __future__ import annotations

import time
from typing import Any

import click

from pipeline.cli.options import (
    cluster_options,
    echo_written,
    execution,
    output_options,
    overwrite_opt,
    param_opt,
    write_options,
)


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=True))
@click.argument("output_path", metavar="OUTPUT", type=click.Path(dir_okay=True))
@click.option(
    "--kernel",
    "kernel_name",
    required=True,
    metavar="NAME",
    help="Kernel name (see `pipeline kernels`), entry point, or package.module:function.",
)
@param_opt
@click.option(
    "--chunks", type=click.IntRange(min=1), help="Chunk edge in pixels (rounded to the blocks)."
)
@overwrite_opt
@output_options
@cluster_options
@click.option("--progress/--no-progress", default=True, show_default=True)
def compute(
    input_path: str,
    output_path: str,
    kernel_name: str,
    params: tuple[str, ...],
    chunks: int | None,
    overwrite: bool,
    output_format: str,
    creation_options: tuple[str, ...],
    overview_resampling: str | None,
    progress: bool,
    **cluster: Any,
) -> None:
    """Apply a kernel to every block of INPUT and write OUTPUT atomically.

    \b
    Example:
      pipeline compute dem.tif slope.tif --kernel slope --param z_factor=1
    """
    from pipeline.apply import apply_kernel
    from pipeline.io.open import open_raster
    from pipeline.io.write import check_output_path, write_raster
    from pipeline.kernels import get_kernel, parse_param_strings

    # Everything that can be checked is checked before a cluster starts.
    da = open_raster(input_path, chunks=chunks if chunks else "auto")
    spec = get_kernel(kernel_name)
    result = apply_kernel(da, spec, **parse_param_strings(spec, params))
    check_output_path(output_path, overwrite=overwrite)
    write_kw = write_options(output_format, creation_options, overview_resampling)
    nbytes = max(da.nbytes, result.nbytes)
    with execution(cluster, nbytes, progress=progress) as run_kw:
        start = time.perf_counter()
        out = write_raster(result, output_path, overwrite=overwrite, **run_kw, **write_kw)
        seconds = time.perf_counter() - start
    mpix = da.sizes["y"] * da.sizes["x"] / 1e6
    echo_written(out, write_kw)
    click.echo(f"{seconds:.2f} s, {mpix / seconds:.2f} megapixels/s ({da.sizes['band']} bands)")
