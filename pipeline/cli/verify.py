"""``pipeline verify``: check written rasters thoroughly."""

from __future__ import annotations

import click


@click.command()
@click.argument("paths", metavar="PATH...", nargs=-1, required=True)
@click.option("--crs", help="Expected CRS of every file.")
@click.option(
    "--cog",
    is_flag=True,
    help="Also require a valid Cloud-Optimized GeoTIFF (rio-cogeo strict validation); "
    "reports overview levels and block size.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False),
    help="Write one row per file: .csv for CSV, otherwise JSON lines (replaced atomically).",
)
@click.pass_context
def verify(
    ctx: click.Context, paths: tuple[str, ...], crs: str | None, cog: bool, report: str | None
) -> None:
    """Check that each file opens, has the expected CRS, a sane grid, and every block decodes.

    Catches truncated files and tiles that were never written (which GDAL reads back as zeros
    without an error). All-nodata files are reported as warnings. Exit 0 when all pass, else 1.
    """
    from pipeline.report import write_report
    from pipeline.verify import verify_raster

    if crs:
        from pipeline.warp.grid import parse_crs

        parse_crs(crs)
    results = [verify_raster(p, crs=crs, cog=cog) for p in paths]
    for res in results:
        click.echo(res.summary())
    bad = sum(not r.ok for r in results)
    click.echo(f"{len(results)} file(s): {len(results) - bad} ok, {bad} failed")
    if report:
        write_report(report, [r.as_record() for r in results])
    ctx.exit(1 if bad else 0)
