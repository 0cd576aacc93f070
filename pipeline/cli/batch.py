"""``pipeline batch``: reproject thousands of tiles with failure isolation and resume."""

from __future__ import annotations

from typing import Any

import click

from pipeline.cli.options import (
    cluster_options,
    connect_from_options,
    error_threshold_opt,
    output_options,
    overwrite_opt,
    param_opt,
    write_options,
)


@click.command()
@click.argument("inputs", metavar="[INPUTS]...", nargs=-1)
@click.option(
    "-o",
    "--output",
    "outdir",
    required=True,
    metavar="OUTDIR",
    help="Output folder (created if missing; input sub-folders are mirrored).",
)
@click.option("--dst-crs", required=True, help="Target CRS, e.g. EPSG:3857.")
@click.option("--resampling", default="nearest", show_default=True, help="Warp resampling.")
@click.option("--dst-nodata", type=float, help="Output nodata (default: the input's).")
@click.option("--resolution", type=float, help="Output pixel size in target CRS units.")
@error_threshold_opt
@click.option("--kernel", "kernel_name", help="Kernel applied before reprojection.")
@param_opt
@click.option(
    "--from-list",
    "from_list",
    metavar="FILE",
    help="Text file with one path or GDAL-readable URL per line ('-': standard input); "
    "blank lines and # comments skipped, relative paths relative to FILE.",
)
@click.option("--recursive", is_flag=True, help="Descend into sub-folders of folders in INPUTS.")
@click.option("--pattern", metavar="GLOB", help="File-name pattern in folders (default: rasters).")
@click.option(
    "--name-template",
    metavar="TEMPLATE",
    help="Output name; {stem}, {name}, {crs}, {suffix} [default: {stem}_{crs}.tif].",
)
@overwrite_opt
@click.option(
    "--verify-existing",
    is_flag=True,
    help="Trust an existing output's manifest record only if its checksum also matches "
    "(reads the file, does not decode it).",
)
@click.option(
    "--reverify",
    is_flag=True,
    help="Ignore the manifest: decode every block of every existing output (full "
    "re-verification); broken outputs are redone.",
)
@output_options
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Retries after I/O errors (bad inputs are never retried).",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False),
    help="Write one row per input: .csv for CSV, otherwise JSON lines.",
)
@click.option("--window", type=click.IntRange(min=1), help="Tiles in flight at once.")
@click.option(
    "--group",
    type=click.IntRange(min=1),
    help="Tiles per task [default: 4, 32 for tiny inputs]; each still fails alone.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@cluster_options
@click.pass_context
def batch(
    ctx: click.Context,
    inputs: tuple[str, ...],
    outdir: str,
    dst_crs: str,
    resampling: str,
    dst_nodata: float | None,
    resolution: float | None,
    error_threshold: float,
    kernel_name: str | None,
    params: tuple[str, ...],
    recursive: bool,
    pattern: str | None,
    from_list: str | None,
    name_template: str | None,
    overwrite: bool,
    verify_existing: bool,
    reverify: bool,
    output_format: str,
    creation_options: tuple[str, ...],
    overview_resampling: str | None,
    retries: int,
    report: str | None,
    window: int | None,
    group: int | None,
    progress: bool,
    **cluster: Any,
) -> None:
    """Reproject every raster in INPUTS and/or the --from-list FILE.

    INPUTS are folders, quoted globs (expanded here; ** descends into sub-folders), files or
    URLs; a single INPUTS that is a text file lists paths as --from-list does. A glob that
    matches nothing, a folder without rasters and a missing or empty list are usage errors;
    a listed file that is missing or not a raster fails alone when its tile runs.

    Each tile is one task: a bad tile fails alone, outputs appear atomically and are verified,
    a rerun skips verified outputs and redoes broken ones. Exit status: 0 when every tile was
    done or skipped, 1 when any failed, 2 for usage errors (nothing was started).

    \b
    Each published output is recorded in OUTDIR/.pipeline-manifest.jsonl. A rerun finds an
    existing output done at one of three levels:
      default            its record matches its size, mtime, input and options: not read
      --verify-existing  and the checksum of its bytes matches: read, not decoded
      --reverify         every block decoded, manifest ignored (full re-verification)
    Outputs without a matching record (other options, modified files) are decoded;
    broken ones are redone. --overwrite redoes every tile.
    """
    from pipeline.batch import plan_batch, run_plan, use_processes
    from pipeline.errors import PipelineError

    write_kw = write_options(output_format, creation_options, overview_resampling)
    try:
        kernel_params: dict[str, Any] = {}
        if kernel_name:
            from pipeline.kernels import get_kernel, parse_param_strings

            kernel_params = parse_param_strings(get_kernel(kernel_name), params)
        elif params:
            raise click.UsageError("--param needs --kernel")
        if verify_existing and reverify:
            raise click.UsageError("give --verify-existing or --reverify, not both")
        if not inputs and from_list is None:
            raise click.UsageError("give INPUTS (folders, globs, files) or --from-list FILE")
        plan = plan_batch(
            inputs[0] if len(inputs) == 1 else (list(inputs) or None),
            outdir,
            dst_crs,
            resampling=resampling,
            kernel=kernel_name,
            kernel_params=kernel_params,
            dst_nodata=dst_nodata,
            resolution=resolution,
            error_threshold=error_threshold,
            recursive=recursive,
            pattern=pattern,
            from_list=from_list,
            name_template=name_template,
            overwrite=overwrite,
            retries=retries,
            trust="decode" if reverify else "checksum" if verify_existing else "manifest",
            **write_kw,
        )
    except PipelineError as err:
        click.echo(f"pipeline: error: {' '.join(str(err).split())}", err=True)
        ctx.exit(2)
    click.echo(f"{len(plan.jobs)} input tiles -> {plan.outdir}", err=True)
    if not (cluster.get("scheduler") or cluster.get("cluster_file") or cluster.get("processes")):
        cluster = {**cluster, "processes": use_processes(len(plan.jobs))}
    with connect_from_options(cluster):
        summary = run_plan(plan, window=window, report=report, progress=progress, group=group)
    if summary.removed_temporaries:
        click.echo(
            f"removed {summary.removed_temporaries} temporary file(s) "
            "left by a crashed run or a lost worker"
        )
    for record in summary.records:
        if record.status == "failed":
            reason = record.error.removeprefix(f"{record.input}: ")
            click.echo(f"FAILED {record.input}: {reason}")
    click.echo(summary.line())
    if report:
        click.echo(f"report: {report}")
    ctx.exit(summary.exit_code)
