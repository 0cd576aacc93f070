"""``pipeline demo``: the seed workload on generated data and a LocalCluster."""

from __future__ import annotations

import time
from typing import Any

import click

from pipeline.cli.options import cluster_options, connect_from_options


@click.command()
@click.option(
    "--size",
    type=click.IntRange(min=64),
    default=2048,
    show_default=True,
    help="Sample raster edge in pixels.",
)
@click.option("--bands", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    help="Where the sample and output go (default: the user cache folder).",
)
@click.option("--keep-alive", is_flag=True, help="Keep the cluster and dashboard up until Ctrl-C.")
@cluster_options
def demo(size: int, bands: int, workdir: str | None, keep_alive: bool, **cluster: Any) -> None:
    """Reverse the bands of a generated sample raster with rasterio's seed kernel."""
    from pipeline.demo import default_workdir, run_demo, sample_raster

    folder = workdir or str(default_workdir())
    click.echo(f"sample raster: {sample_raster(folder, size=size, bands=bands)}")
    with connect_from_options(cluster):
        res = run_demo(folder, size=size, bands=bands, progress=True)
        click.echo(f"output: {res.output}")
        click.echo(
            f"wall time {res.seconds:.2f} s, {res.megapixels_per_second:.2f} megapixels/s "
            f"({res.megapixels:.1f} Mpx x {bands} bands)"
        )
        click.echo(
            "check: output equals input with bands reversed"
            if res.verified
            else "check FAILED: output differs from the reversed input"
        )
        if keep_alive:
            click.echo("keeping the cluster and dashboard up; press Ctrl-C to stop")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    if not res.verified:
        raise SystemExit(1)
