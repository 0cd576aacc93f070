"""``pipeline verify``: check written rasters thoroughly."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from pipeline.batch import TileRecord
    from pipeline.verify import VerifyResult


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

    A PATH that is a folder stands for every raster under it, in all sub-folders (temporary
    files of unfinished writes and GDAL sidecars are left out); a folder without rasters is a
    usage error. Catches truncated files and tiles that were never written (which GDAL reads
    back as zeros without an error). All-nodata files are reported as warnings. Exit 0 when all
    pass, else 1.

    --report writes one row per file. Given only files, its columns are path, ok, crs, shape,
    blocks, cog, problems, warnings; given a folder, a batch report's columns (input, output
    empty, status ok or failed, seconds, error, attempts 0, warning).
    """
    from pipeline.batch_plan import find_rasters
    from pipeline.errors import BatchUsageError, PipelineError
    from pipeline.report import write_report
    from pipeline.verify import verify_raster

    if crs:
        from pipeline.warp.grid import parse_crs

        parse_crs(crs)
    try:
        files: list[str] = []
        for p in paths:
            if not os.path.isdir(p):
                files.append(p)
                continue
            found = find_rasters(p, recursive=True)
            if not found:
                raise BatchUsageError(f"{p}: no rasters in this folder or its sub-folders")
            files.extend(found)
    except PipelineError as err:
        click.echo(f"pipeline: error: {' '.join(str(err).split())}", err=True)
        ctx.exit(2)

    def check(path: str) -> tuple[VerifyResult, float]:
        start = time.perf_counter()
        return verify_raster(path, crs=crs, cog=cog), time.perf_counter() - start

    # GDAL decodes without the GIL: one thread per usable core (not importing dask for its
    # cgroup-aware count keeps a one-file check fast), results printed in the files' order
    from concurrent.futures import ThreadPoolExecutor

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    results = []
    with ThreadPoolExecutor(max(1, cores or 1)) as pool:
        # a file named twice (or inside a folder given) once
        for res, seconds in pool.map(check, dict.fromkeys(files)):
            results.append((res, seconds))
            click.echo(res.summary())
    bad = sum(not res.ok for res, _ in results)
    click.echo(f"{len(results)} file(s): {len(results) - bad} ok, {bad} failed")
    if report:
        if any(os.path.isdir(p) for p in paths):
            from pipeline.batch import TileRecord

            columns = list(TileRecord.__dataclass_fields__)
            records = [asdict(_tile_record(res, seconds)) for res, seconds in results]
            write_report(report, records, fieldnames=columns)
        else:
            write_report(report, [res.as_record() for res, _ in results])
    ctx.exit(1 if bad else 0)


def _tile_record(res: VerifyResult, seconds: float) -> TileRecord:
    """A batch report row for one verified file: status ``ok`` or ``failed``, no output."""
    from pipeline.batch import TileRecord

    return TileRecord(
        input=res.path,
        output="",
        status="ok" if res.ok else "failed",
        seconds=seconds,
        error="; ".join(res.problems),
        warning="; ".join(res.warnings),
    )
