"""Batch mode: thousands of tiles, a few per task, isolated failures, atomic outputs, resume.

Each input is processed by `process_tile`: open, optional kernel, reproject with exactly
`pipeline.reproject`'s warp, write under a temporary name, verify, publish. A task
(`process_group`) runs a few tiles one after the other and never raises: it returns one small
`TileRecord` per tile. Submission is a sliding window of in-flight tasks, so the client holds a
bounded number of futures whatever the number of tiles.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from pipeline import config
from pipeline.batch_plan import TileJob, discover, is_url, plan_outputs
from pipeline.errors import (
    BatchUsageError,
    KernelError,
    PipelineError,
    RasterInputError,
)
from pipeline.io.profile import output_driver
from pipeline.io.staged import TEMP_SUFFIX, check_output_path
from pipeline.manifest import ManifestWriter, Trust, fingerprint, is_trusted, read_manifest
from pipeline.verify import verify_raster, verify_written
from pipeline.warp.spec import DEFAULT_ERROR_THRESHOLD, WarpOptions

#: Errors that will not go away on a retry (bad input, bad options).
DETERMINISTIC: tuple[type[BaseException], ...] = (RasterInputError, KernelError, ValueError)


@dataclass
class TileRecord:
    """What happened to one input."""

    input: str
    output: str
    status: str  # "done", "skipped" or "failed"
    seconds: float = 0.0
    error: str = ""
    attempts: int = 0
    warning: str = ""
    # the output's fingerprint when it was verified in this run (the manifest's record)
    size: int = 0
    mtime_ns: int = 0
    checksum: str = ""


@dataclass(frozen=True)
class TileOptions:
    """Everything a tile task needs besides its paths (small, pickled once per task)."""

    dst_crs: str
    warp: WarpOptions = field(default_factory=WarpOptions)
    kernel: str | None = None
    kernel_params: tuple[tuple[str, Any], ...] = ()
    overwrite: bool = False
    retries: int = 2
    driver: str = "GTiff"
    creation_options: tuple[tuple[str, str], ...] = ()
    overview_resampling: str | None = None
    max_block: int | None = None
    overviews: bool = True
    trust: Trust = Trust.MANIFEST

    @property
    def cog(self) -> bool:
        """Outputs are Cloud-Optimized GeoTIFFs."""
        return self.driver.upper() == "COG"

    @property
    def token(self) -> str:
        """Token of the options that shape an output (not overwrite, retries or trust)."""
        from pipeline.manifest import options_token

        shaping = replace(self, overwrite=False, retries=0, trust=Trust.MANIFEST)
        return options_token({k: v for k, v in asdict(shaping).items() if k != "trust"})


@dataclass
class BatchSummary:
    """The records of a batch run and its counts; ``exit_code`` is 0 or 1."""

    records: list[TileRecord] = field(default_factory=list)
    seconds: float = 0.0
    removed_temporaries: int = 0  # of crashed runs or of workers lost during this one

    def count(self, status: str) -> int:
        """Number of records with ``status``."""
        return sum(1 for r in self.records if r.status == status)

    @property
    def done(self) -> int:
        """Tiles written and verified in this run."""
        return self.count("done")

    @property
    def skipped(self) -> int:
        """Tiles whose verified output already existed."""
        return self.count("skipped")

    @property
    def failed(self) -> int:
        """Tiles that failed (their outputs were not written)."""
        return self.count("failed")

    @property
    def exit_code(self) -> int:
        """0 when every tile was done or skipped, 1 when any failed."""
        return 1 if self.failed else 0

    def line(self) -> str:
        """One summary line for the terminal."""
        rate = len(self.records) / self.seconds if self.seconds else 0.0
        return (
            f"{len(self.records)} tiles: {self.done} done, {self.skipped} skipped, "
            f"{self.failed} failed in {self.seconds:.1f} s ({rate:.1f} tiles/s)"
        )

    def write_report(self, path: str | os.PathLike[str]) -> str:
        """Write one row per input atomically: CSV for ``.csv``, JSON lines otherwise."""
        from pipeline.report import write_report

        rows = [asdict(r) for r in self.records]
        return write_report(path, rows, fieldnames=list(TileRecord.__dataclass_fields__))


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, PipelineError) else f"{type(err).__name__}: {text}"


def _reproject_tile(
    job: TileJob, opts: TileOptions, *, overwrite: bool, scheduler: str | None = "sync"
) -> str:
    """Open -> kernel -> reproject -> verified atomic write.

    Small tiles compute in the calling thread (``scheduler="sync"``, inside their task); large
    ones (``scheduler=None``) run chunked on the whole cluster from the client.
    """
    from pipeline.apply import apply_kernel
    from pipeline.io.open import open_raster
    from pipeline.io.write import write_raster
    from pipeline.warp.reproject import reproject

    da = open_raster(job.input)
    if opts.kernel:
        da = apply_kernel(da, opts.kernel, **dict(opts.kernel_params))
    w = opts.warp
    out = reproject(
        da,
        opts.dst_crs,
        resampling=w.resampling,
        dst_nodata=w.dst_nodata,
        resolution=w.resolution,
        error_threshold=w.error_threshold,
    )
    os.makedirs(os.path.dirname(job.output), exist_ok=True)
    warning: list[str] = []

    def verify_before_publish(tmp: str) -> None:
        res = verify_raster(tmp, crs=opts.dst_crs)
        if not res.ok:
            raise RasterInputError(f"{job.input}: output failed verification: {res.problems}")
        warning.extend(res.warnings)

    write_raster(
        out,
        job.output,
        overwrite=overwrite,
        scheduler=scheduler,
        before_publish=verify_before_publish,
        driver=opts.driver,
        creation_options=dict(opts.creation_options),
        overview_resampling=opts.overview_resampling,
        max_block=opts.max_block,
    )
    return "; ".join(warning)


def _warp_tile_direct(job: TileJob, opts: TileOptions, *, overwrite: bool) -> str:
    """The same warp as `_reproject_tile` for a whole small tile, without xarray or dask.

    Reads and warps the tile whole (`pipeline.warp.tile.warp_tile`, equal to chunked
    `pipeline.reproject` pixel for pixel) and writes it through the staged-output path
    (`pipeline.io.staged.write_staged`) as a GeoTIFF laid out as `write_raster` would (tiles,
    compression, predictor, nodata, tags), checked with `verify_written` (header, CRS, block
    table; no second decode) before it is published atomically.
    """
    import rasterio

    from pipeline import chunking
    from pipeline.io.metadata import apply_metadata
    from pipeline.io.staged import CogStep, staging_profile, write_staged
    from pipeline.warp.tile import warp_tile

    tile = warp_tile(job.input, opts.dst_crs, opts.warp, overviews=opts.overviews)
    out, spec = tile.data, tile.spec
    max_block = int(opts.max_block or config.get("write.max-block"))
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "count": out.shape[0],
        "height": out.shape[1],
        "width": out.shape[2],
        "dtype": out.dtype.name,
        "crs": spec.dst.crs,
        "transform": spec.dst.transform,
        "nodata": spec.dst_nodata,
        "tiled": True,
        "blockysize": chunking.write_block_size((out.shape[1],), max_block=max_block),
        "blockxsize": chunking.write_block_size((out.shape[2],), max_block=max_block),
    }
    # a COG stages a fast GeoTIFF first: overviews -> COG copy (pipeline.io.cog)
    profile.update(
        staging_profile(out.dtype, cog=opts.cog, creation_options=dict(opts.creation_options))
    )
    warnings: list[str] = []

    def write(tmp: str) -> None:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(out)
            apply_metadata(dst, tile.metadata)

    def verify(tmp: str) -> None:
        res = verify_written(tmp, out, crs=opts.dst_crs, nodata=spec.dst_nodata)
        if not res.ok:
            raise RasterInputError(f"{job.input}: output failed verification: {res.problems}")
        warnings.extend(res.warnings)

    cog = (
        CogStep(
            dtype=out.dtype,
            height=out.shape[1],
            width=out.shape[2],
            blocksize=max_block,
            overview_resampling=opts.overview_resampling,
            creation_options=dict(opts.creation_options),
        )
        if opts.cog
        else None
    )
    os.makedirs(os.path.dirname(job.output), exist_ok=True)
    write_staged(job.output, write, overwrite=overwrite, cog=cog, verify=verify)
    return "; ".join(warnings)


def reproject_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    dst_crs: str,
    warp: WarpOptions,
    *,
    overwrite: bool = False,
    driver: str = "GTiff",
    creation_options: dict[str, str] | None = None,
    overview_resampling: str | None = None,
    max_block: int | None = None,
    overviews: bool = True,
) -> str:
    """Warp one whole file and write it, verified and atomically, with no dask graph.

    What a batch tile does (`pipeline.warp.tile.warp_tile`, then the staged-output path), for
    one small file: the command line takes this path for a one-block ``pipeline reproject``,
    which then never imports xarray or dask.array. The pixels equal `pipeline.reproject`'s.

    Returns
    -------
    str
        Warnings of the output's verification (empty when none).
    """
    job = TileJob(os.fspath(src), os.path.abspath(os.fspath(dst)))
    opts = TileOptions(
        dst_crs=dst_crs,
        warp=warp,
        driver=output_driver(driver),
        creation_options=tuple(
            sorted((k.upper(), str(v)) for k, v in (creation_options or {}).items())
        ),
        overview_resampling=overview_resampling,
        max_block=max_block,
        overviews=overviews,
    )
    return _warp_tile_direct(job, opts, overwrite=overwrite)


def _fingerprint(record: TileRecord) -> None:
    """Record the size, mtime and checksum of ``record.output`` (just verified)."""
    # gone already: no manifest record, a rerun decodes or redoes it
    with contextlib.suppress(OSError):
        record.size, record.mtime_ns, record.checksum = fingerprint(record.output)


def process_tile(
    job: TileJob,
    opts: TileOptions,
    scheduler: str | None = "sync",
    known: Mapping[str, Any] | None = None,
) -> TileRecord:
    """Run one tile and report; never raises. Runs on a worker (or, for large inputs, on the
    client with ``scheduler=None`` so the tile's chunks spread over the cluster).

    An existing output (unless ``opts.overwrite``) is skipped when ``known``, its manifest
    record, vouches for it at level ``opts.trust`` (`pipeline.manifest.is_trusted`: no
    decode), or else when it verifies (every block decoded); one that does not verify (a crash
    leftover, never-written tiles) is redone. Deterministic failures are not retried; other
    errors (I/O) are retried up to ``opts.retries`` times. A verified output's fingerprint
    (size, mtime, checksum) is returned in the record for the client's manifest.
    """
    start = time.perf_counter()
    record = TileRecord(job.input, job.output, "failed")
    overwrite = opts.overwrite
    if not overwrite and os.path.exists(job.output):
        if is_trusted(known, job.output, input=job.input, token=opts.token, trust=opts.trust):
            record.status = "skipped"
        elif verify_raster(job.output, crs=opts.dst_crs, cog=opts.cog).ok:
            record.status = "skipped"
            _fingerprint(record)
        else:
            overwrite = True  # a broken output from an earlier run: redo it
        if record.status == "skipped":
            record.seconds = time.perf_counter() - start
            return record
    for attempt in range(1, opts.retries + 2):
        record.attempts = attempt
        try:
            if scheduler == "sync" and not opts.kernel:
                record.warning = _warp_tile_direct(job, opts, overwrite=overwrite)
            else:
                record.warning = _reproject_tile(
                    job, opts, overwrite=overwrite, scheduler=scheduler
                )
            record.status, record.error = "done", ""
            _fingerprint(record)
            break
        except DETERMINISTIC as err:
            record.error = _one_line(err)
            break
        except Exception as err:  # transient (I/O) errors: retry
            record.error = _one_line(err)
            time.sleep(min(2.0, 0.1 * 2**attempt))
    record.seconds = time.perf_counter() - start
    return record


def process_group(
    jobs: Sequence[TileJob],
    opts: TileOptions,
    known: Sequence[Mapping[str, Any] | None] | None = None,
) -> list[TileRecord]:
    """`process_tile` for each of ``jobs`` in turn, in one task; one record per tile.

    A tile that fails fails alone: `process_tile` never raises, so the others of the group
    run and report as they would in tasks of their own. ``known``: the manifest record of
    each job's output (or None).
    """
    records = known or [None] * len(jobs)
    return [process_tile(job, opts, known=rec) for job, rec in zip(jobs, records, strict=True)]


#: Tiles per task, chosen from the measured per-task cost of the scheduler against a tile's own
#: work (benchmarks/RESULTS.md): four tiles a task make the scheduling cost per tile small, and
#: a failure still costs only its own tile. Tiny inputs (below `TINY_BYTES`) take `TINY_GROUP`
#: per task, as their own work is a few milliseconds.
GROUP_TILES = 4
TINY_BYTES = 64 * 1024
TINY_GROUP = 32


def group_size(jobs: Sequence[TileJob]) -> int:
    """Tiles per task for ``jobs`` (`GROUP_TILES`, or `TINY_GROUP` when the first few
    inputs are all local files smaller than `TINY_BYTES`)."""
    sample = [_size(j.input) for j in jobs[:8]]
    if sample and all(0 < s < TINY_BYTES for s in sample):
        return TINY_GROUP
    return GROUP_TILES


def use_processes(tiles: int, cpus: int | None = None) -> bool:
    """Whether a LocalCluster started for ``tiles`` tiles should use worker processes.

    ``pipeline.batch.processes``: true or false, or ``"auto"``: processes for at least
    ``pipeline.batch.processes-min-tiles`` tiles on more than one core (they start ~3 s later
    but run each tile faster than threads sharing the GIL; ``pipeline.yaml`` has the figures).
    """
    mode = config.get("batch.processes")
    if mode != "auto":
        return bool(mode)
    from dask.system import CPU_COUNT

    return (cpus or CPU_COUNT) > 1 and tiles >= int(config.get("batch.processes-min-tiles"))


def _size(path: str) -> int:
    """Bytes of a local input; 0 (a small tile) for URLs and missing or unreadable files."""
    if is_url(path):
        return 0
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def remove_leftovers(folder: str) -> int:
    """Delete temporary files of crashed runs under ``folder``; return how many."""
    removed = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            if name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
    return removed


class _Progress:
    """done / failed / skipped, tiles per second and ETA on one terminal line."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.start = time.perf_counter()
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def update(self, summary: BatchSummary, final: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (not final and now - self.last < (0.5 if self.tty else 10.0)):
            return
        self.last = now
        n = len(summary.records)
        rate = n / (now - self.start) if now > self.start else 0.0
        eta = (self.total - n) / rate if rate else float("nan")
        text = (
            f"[{n}/{self.total}] done {summary.done}, failed {summary.failed}, "
            f"skipped {summary.skipped}, {rate:.1f} tiles/s, ETA {eta:.0f} s"
        )
        end = "\n" if final or not self.tty else ""
        print(("\r" if self.tty else "") + text, end=end, file=sys.stderr, flush=True)


def _run_window(
    client: Any,
    jobs: Sequence[TileJob],
    opts: TileOptions,
    window: int,
    on_record: Callable[[TileRecord], None],
    group: int = 1,
    known: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Run ``jobs`` in tasks of ``group`` tiles, at most ``window`` tiles (and at least one
    task) in flight; ``on_record`` gets one record per tile. ``known``: manifest records by
    output path, sent with the tiles whose outputs they describe."""
    from dask.base import tokenize
    from distributed import as_completed

    size = max(1, group)
    groups: Iterator[tuple[TileJob, ...]] = (
        tuple(jobs[i : i + size]) for i in range(0, len(jobs), size)
    )

    def submit(batch: tuple[TileJob, ...]) -> Any:
        records = [known.get(j.output) for j in batch] if known else []
        args = (batch, opts, records) if any(records) else (batch, opts)
        key = f"pipeline-tiles-{tokenize(*args)}"
        fut = client.submit(process_group, *args, key=key, pure=False)
        fut.jobs = batch
        return fut

    first = [submit(g) for g in itertools.islice(groups, max(1, window // size))]
    queue = as_completed(first)
    for fut in queue:
        try:
            records = fut.result()
        except Exception as err:  # the task itself was lost (worker died too often)
            records = [
                TileRecord(job.input, job.output, "failed", error=_one_line(err))
                for job in fut.jobs
            ]
        fut.release()
        for record in records:
            on_record(record)
        nxt = next(groups, None)
        if nxt is not None:
            queue.add(submit(nxt))


@dataclass(frozen=True)
class BatchPlan:
    """A validated batch: the tile jobs, their options and the output folder."""

    jobs: tuple[TileJob, ...]
    options: TileOptions
    outdir: str


def plan_batch(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
    outdir: str | os.PathLike[str],
    dst_crs: str,
    *,
    resampling: str = "nearest",
    kernel: str | None = None,
    kernel_params: dict[str, Any] | None = None,
    dst_nodata: float | None = None,
    resolution: float | tuple[float, float] | None = None,
    recursive: bool = False,
    pattern: str | None = None,
    from_list: str | os.PathLike[str] | None = None,
    name_template: str | None = None,
    overwrite: bool = False,
    retries: int = 2,
    driver: str = "GTiff",
    creation_options: dict[str, str] | None = None,
    overview_resampling: str | None = None,
    max_block: int | None = None,
    error_threshold: float = DEFAULT_ERROR_THRESHOLD,
    trust: Trust | str = Trust.MANIFEST,
) -> BatchPlan:
    """Validate everything a batch needs before any work is dispatched (see `run_batch`)."""
    from pipeline.warp.grid import parse_crs

    crs = parse_crs(dst_crs)
    warp = WarpOptions(
        resolution=resolution,
        resampling=resampling,
        dst_nodata=dst_nodata,
        error_threshold=error_threshold,
    )
    found = discover(inputs, recursive=recursive, pattern=pattern, from_list=from_list)
    jobs = plan_outputs(
        found.files, found.root, outdir, crs, name_template=name_template, url_roots=found.url_roots
    )
    out_root = os.path.abspath(os.fspath(outdir))
    try:
        os.makedirs(out_root, exist_ok=True)
    except OSError as err:
        raise BatchUsageError(
            f"{out_root}: cannot create the output folder ({err.strerror})"
        ) from err
    check_output_path(os.path.join(out_root, ".pipeline-write-check"), overwrite=True)
    if kernel:
        from pipeline.kernels import get_kernel

        get_kernel(kernel)
    driver = output_driver(driver)
    if driver == "COG":
        from pipeline.io.cog import resampling_for_overviews

        if overview_resampling is not None:
            resampling_for_overviews(overview_resampling, "float32")
    opts = TileOptions(
        dst_crs=crs.to_wkt(),
        warp=warp,
        kernel=kernel,
        kernel_params=tuple(sorted((kernel_params or {}).items())),
        overwrite=overwrite,
        retries=retries,
        driver=driver,
        creation_options=tuple(
            sorted((k.upper(), str(v)) for k, v in (creation_options or {}).items())
        ),
        overview_resampling=overview_resampling,
        max_block=max_block,
        trust=Trust(trust),
    )
    return BatchPlan(tuple(jobs), opts, out_root)


def run_plan(
    plan: BatchPlan,
    *,
    client: Any = None,
    window: int | None = None,
    report: str | os.PathLike[str] | None = None,
    progress: bool = False,
    group: int | None = None,
) -> BatchSummary:
    """Run a `BatchPlan` on ``client`` (default: the active client); see `run_batch`."""
    summary = BatchSummary(removed_temporaries=remove_leftovers(plan.outdir))
    if client is None:
        from distributed import get_client

        client = get_client()
    threads = sum(client.nthreads().values()) or 1
    bar = _Progress(len(plan.jobs), progress)
    start = time.perf_counter()
    opts = plan.options
    token = opts.token
    writer = ManifestWriter(plan.outdir)

    def on_record(record: TileRecord) -> None:
        summary.records.append(record)
        summary.seconds = time.perf_counter() - start
        if record.checksum:  # verified in this run: the manifest vouches for it next time
            writer.add(_manifest_entry(record, plan.outdir, token))
        bar.update(summary)

    known = _known_outputs(plan)
    todo: list[TileJob] = []
    for job in plan.jobs:
        if opts.trust is Trust.MANIFEST and is_trusted(
            known.get(job.output), job.output, input=job.input, token=token, trust=opts.trust
        ):  # one stat on the client: no task, no read
            on_record(TileRecord(job.input, job.output, "skipped"))
        else:
            todo.append(job)

    from dask.utils import parse_bytes

    threshold = parse_bytes(config.get("batch.large-bytes"))
    small = [j for j in todo if _size(j.input) <= threshold]
    tiles = group or group_size(small)
    # by default at least two tasks per thread in flight, whatever the group size
    size = window or max(16, 8 * threads, 2 * threads * tiles)
    with writer:
        if small:
            _run_window(client, small, opts, size, on_record, group=tiles, known=known)
        for job in todo:
            if _size(job.input) > threshold:  # chunked over the whole cluster, one at a time
                on_record(process_tile(job, opts, scheduler=None, known=known.get(job.output)))
    # a worker killed while writing leaves its temporary file; its tile was redone elsewhere
    summary.removed_temporaries += remove_leftovers(plan.outdir)
    summary.seconds = time.perf_counter() - start
    bar.update(summary, final=True)
    if report is not None:
        summary.write_report(report)
    return summary


def _known_outputs(plan: BatchPlan) -> dict[str, dict[str, Any]]:
    """Manifest records of ``plan``'s outputs by absolute output path (none to trust when
    overwriting or with `Trust.DECODE`)."""
    if plan.options.overwrite or plan.options.trust is Trust.DECODE:
        return {}
    return {os.path.join(plan.outdir, rel): rec for rel, rec in read_manifest(plan.outdir).items()}


def _manifest_entry(record: TileRecord, outdir: str, token: str) -> dict[str, Any]:
    """The manifest line for a verified output."""
    return {
        "path": os.path.relpath(record.output, outdir),
        "size": record.size,
        "mtime_ns": record.mtime_ns,
        "checksum": record.checksum,
        "input": record.input,
        "token": token,
    }


def run_batch(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
    outdir: str | os.PathLike[str],
    dst_crs: str,
    *,
    client: Any = None,
    window: int | None = None,
    report: str | os.PathLike[str] | None = None,
    progress: bool = False,
    group: int | None = None,
    **options: Any,
) -> BatchSummary:
    """Reproject every input tile to ``dst_crs``, one task per tile, and report.

    Parameters
    ----------
    inputs : str, path, list of them, or None
        A folder, a glob (``**`` descends), a text file with one path per line, a path or URL,
        or a list of folders, globs, paths and URLs (paths in a list are not checked up front:
        a missing or bad one fails alone). None with ``from_list``.
    outdir : str or path
        Output folder (created if missing); sub-folders of the inputs are mirrored.
    dst_crs : str
        Target CRS, validated with pyproj before anything runs.
    client : distributed.Client, optional
        Default: the active client (`pipeline.connect` sets one).
    window : int, optional
        Tiles in flight at once (default: 8 per worker thread, at least 16 and two tasks
        per worker thread).
    group : int, optional
        Tiles per task (default `group_size`: 4, or 32 for tiny inputs), run one after the
        other; each tile still fails alone and gets its own report row.
    report : str or path, optional
        Write one row per input (``.csv``: CSV, otherwise JSON lines).
    progress : bool, default False
        Print a live progress line on stderr.
    **options
        `plan_batch` options: ``resampling``, ``kernel``, ``kernel_params``, ``dst_nodata``,
        ``resolution``, ``error_threshold`` (as `pipeline.reproject`), ``recursive`` and
        ``pattern`` (folder discovery), ``from_list`` (a text file, ``"-"`` for standard
        input, with one path or GDAL-readable URL per line; blank lines and ``#`` comments
        skipped, relative paths relative to the list; added to ``inputs``; a URL's output is
        named after its last path component), ``name_template`` (default ``{stem}_{crs}.tif``),
        ``overwrite`` (redo every tile; otherwise verified outputs are skipped and broken
        ones redone), ``retries`` (after non-deterministic I/O errors, default 2), and the
        output format as in `pipeline.write_raster`: ``driver`` ("GTiff" or "COG"; with
        "COG" an existing output is skipped only if it is a valid COG),
        ``creation_options``, ``overview_resampling`` and ``max_block``; ``trust``: how an
        existing output is found done (`pipeline.manifest.Trust`): ``"manifest"`` (default:
        its record in ``OUTDIR/.pipeline-manifest.jsonl``, written when it was published,
        matches its size, mtime, input and options; nothing is read), ``"checksum"`` (and its
        bytes' checksum matches) or ``"decode"`` (every block decoded, as `verify_raster`).
        Outputs without a matching record are decoded; broken ones are redone.

    Returns
    -------
    BatchSummary
        Records in completion order; ``exit_code`` 0 or 1.

    Raises
    ------
    BatchUsageError, CRSInputError, OutputError
        Before any work: no inputs (a folder without rasters, a glob matching nothing, a
        missing or empty list file), colliding outputs, invalid CRS, unwritable folder.
    """
    plan = plan_batch(inputs, outdir, dst_crs, **options)
    return run_plan(
        plan, client=client, window=window, report=report, progress=progress, group=group
    )


__all__ = [
    "BatchPlan",
    "BatchSummary",
    "TileOptions",
    "TileRecord",
    "plan_batch",
    "process_group",
    "process_tile",
    "reproject_file",
    "run_batch",
    "run_plan",
    "use_processes",
]
