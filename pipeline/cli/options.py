"""Options shared by several commands (rasterio's ``rio/options.py`` pattern)."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import click

F = Callable[..., Any]

#: A job whose input and output are both at most this large, run without any cluster option,
#: runs in this process on dask's threaded scheduler: no LocalCluster, no dashboard. Starting
#: one (importing distributed and bokeh, then the scheduler) costs seconds, more than such a job.
IN_PROCESS_MAX_BYTES = 256 * 2**20

#: The options that ask for a cluster: any of them starts or reaches one as before.
_CLUSTER_OPTIONS = ("scheduler", "cluster_file", "workers", "threads", "processes",
                    "dashboard_address")  # fmt: skip


def cluster_options(f: F) -> F:
    """--scheduler / --cluster / --workers / --threads / --processes / --dashboard-address /
    --insecure / --forward-credentials.

    Without any of them a small job (input and output up to `IN_PROCESS_MAX_BYTES`) runs in
    this process without a cluster; a larger one starts a LocalCluster.
    """
    decorators = [
        click.option(
            "--scheduler",
            metavar="ADDRESS",
            help="Submit to a running scheduler (tcp://host:port or tls://host:port) "
            "instead of starting a LocalCluster. Without this or any option below, jobs up to "
            "256 MiB run in this process, with no cluster and no dashboard.",
        ),
        click.option(
            "--cluster",
            "cluster_file",
            metavar="FILE",
            type=click.Path(dir_okay=False),
            help="Start or reach the cluster a cluster-config YAML describes "
            "(see cluster-configs/).",
        ),
        click.option("--workers", type=click.IntRange(min=1), help="LocalCluster workers."),
        click.option("--threads", type=click.IntRange(min=1), help="Threads per worker."),
        click.option(
            "--processes", is_flag=True, help="LocalCluster workers as processes, not threads."
        ),
        click.option(
            "--dashboard-address",
            help="Where the LocalCluster dashboard listens [default: 127.0.0.1:8787; loopback "
            "unless you say otherwise].",
        ),
        click.option(
            "--insecure", is_flag=True, help="Allow plain tcp:// to a non-loopback scheduler."
        ),
        click.option(
            "--forward-credentials/--no-forward-credentials",
            default=None,
            help="Pass this machine's AWS credentials and S3 settings (AWS_* variables, or the "
            "AWS_PROFILE's keys) to the cluster's workers for s3:// inputs [default: "
            "pipeline.forward-credentials, false: remote workers use their own]. Values are "
            "never printed.",
        ),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def connect_from_options(opts: dict[str, Any]) -> Any:
    """A client from the cluster options above (imported lazily: keeps --help fast)."""
    from pipeline.cluster import connect

    if opts.get("scheduler") and opts.get("cluster_file"):
        raise click.UsageError("give either --scheduler or --cluster, not both")
    client = connect(
        opts.get("scheduler") or opts.get("cluster_file"),
        n_workers=opts.get("workers"),
        threads_per_worker=opts.get("threads"),
        processes=True if opts.get("processes") else None,
        dashboard_address=opts.get("dashboard_address"),
        insecure=bool(opts.get("insecure")),
        forward_credentials=opts.get("forward_credentials"),
    )
    if logging.getLogger("distributed").level >= logging.CRITICAL:  # the CLI's quiet default
        # distributed gives its client logger a level of its own when it is imported (after
        # `pipeline.cli` quietened "distributed"): a lost scheduler would log a traceback
        # besides the one error line the CLI prints.
        logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
    return client


def cluster_requested(opts: dict[str, Any]) -> bool:
    """True when any cluster option was given (the job then runs on that cluster)."""
    return any(opts.get(name) for name in _CLUSTER_OPTIONS)


@contextlib.contextmanager
def execution(opts: dict[str, Any], nbytes: int, *, progress: bool) -> Iterator[dict[str, Any]]:
    """Where the job runs; yields the `pipeline.write_raster` keyword arguments that go with it.

    Any cluster option, or more than `IN_PROCESS_MAX_BYTES`: the cluster of
    `connect_from_options` (it prints the dashboard link). Otherwise dask's threaded scheduler
    in this process (`pipeline.cluster.run_here`: GDAL settings applied here), with dask's
    local progress bar.
    """
    if cluster_requested(opts) or nbytes > IN_PROCESS_MAX_BYTES:
        with connect_from_options(opts):
            yield {"progress": progress}
        return
    from pipeline.cluster import run_here

    with run_here() as scheduler:
        if not progress:
            yield {"scheduler": scheduler}
            return
        from dask.diagnostics import ProgressBar

        # Redrawn every 20 ms, not dask's 100 ms: the bar's thread is joined when the compute
        # ends, which otherwise cost a small job up to 0.1 s (79 ms measured, byte.tif).
        with ProgressBar(dt=0.02):
            yield {"scheduler": scheduler}


overwrite_opt = click.option(
    "--overwrite", is_flag=True, help="Replace an existing output (never done otherwise)."
)


param_opt = click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Kernel parameter, parsed with the kernel's declared type (repeatable).",
)


def _error_threshold(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Reject negative, NaN and infinite thresholds as usage errors (exit status 2)."""
    if not math.isfinite(value) or value < 0:
        raise click.BadParameter(f"must be >= 0 and finite (0 = exact), got {value!r}")
    return value


error_threshold_opt = click.option(
    "--error-threshold",
    "--et",
    "error_threshold",
    type=float,
    default=0.125,
    show_default=True,
    callback=_error_threshold,
    metavar="PIXELS",
    help="Max error of GDAL's approximate transformer in source pixels (gdalwarp -et; "
    "GDAL's default 0.125); 0 = the exact transformer, slower. Any chunking gives the same "
    "pixels either way.",
)


def output_options(f: F) -> F:
    """--format / --co / --overview-resampling."""
    from pipeline.io.cog import OVERVIEW_RESAMPLINGS

    decorators = [
        click.option(
            "--format",
            "output_format",
            type=click.Choice(["gtiff", "cog"], case_sensitive=False),
            default="gtiff",
            show_default=True,
            help="Tiled GeoTIFF, or Cloud-Optimized GeoTIFF with overviews, validated.",
        ),
        click.option(
            "--co",
            "--creation-option",
            "creation_options",
            multiple=True,
            metavar="NAME=VALUE",
            help="GDAL creation option for the output driver (GTiff or COG), e.g. "
            "COMPRESS=ZSTD, LEVEL=9, BLOCKSIZE=256 (repeatable).",
        ),
        click.option(
            "--overview-resampling",
            type=click.Choice(OVERVIEW_RESAMPLINGS),
            help="COG overviews [default: average for floating-point data, nearest for "
            "integer data].",
        ),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def write_options(
    output_format: str, creation_options: tuple[str, ...], overview_resampling: str | None
) -> dict[str, Any]:
    """`pipeline.write_raster` keyword arguments from `output_options`' values."""
    options: dict[str, str] = {}
    for item in creation_options:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--co")
        options[name.strip().upper()] = value.strip()
    cog = output_format.lower() == "cog"
    if overview_resampling and not cog:
        raise click.UsageError("--overview-resampling needs --format cog")
    kwargs: dict[str, Any] = {"driver": "COG" if cog else "GTiff", "creation_options": options}
    if cog:
        kwargs["overview_resampling"] = overview_resampling
    if cog and "BLOCKSIZE" in options:
        size = options.pop("BLOCKSIZE")
        if not size.isdigit() or int(size) < 128 or int(size) % 16:
            raise click.BadParameter(
                f"BLOCKSIZE must be a multiple of 16 and at least 128, got {size!r}",
                param_hint="--co",
            )
        kwargs["max_block"] = int(size)
    return kwargs


def echo_written(path: str, write_kw: dict[str, Any]) -> None:
    """``wrote PATH`` and, for a COG (validated by `write_raster`), its overviews and blocks."""
    click.echo(f"wrote {path}")
    if write_kw.get("driver") == "COG":
        from pipeline.io.cog import written_cog_report

        click.echo(written_cog_report(path).line())
