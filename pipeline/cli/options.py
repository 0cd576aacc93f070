"""Options shared by several commands (rasterio's ``rio/options.py`` pattern)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

F = Callable[..., Any]


def cluster_options(f: F) -> F:
    """--scheduler / --cluster / --workers / --threads / --processes / --dashboard-address /
    --insecure."""
    decorators = [
        click.option(
            "--scheduler",
            metavar="ADDRESS",
            help="Submit to a running scheduler (tcp://host:port or tls://host:port) "
            "instead of starting a LocalCluster.",
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
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def connect_from_options(opts: dict[str, Any]) -> Any:
    """A client from the cluster options above (imported lazily: keeps --help fast)."""
    from pipeline.cluster import connect

    if opts.get("scheduler") and opts.get("cluster_file"):
        raise click.UsageError("give either --scheduler or --cluster, not both")
    return connect(
        opts.get("scheduler") or opts.get("cluster_file"),
        n_workers=opts.get("workers"),
        threads_per_worker=opts.get("threads"),
        processes=True if opts.get("processes") else None,
        dashboard_address=opts.get("dashboard_address"),
        insecure=bool(opts.get("insecure")),
    )


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
