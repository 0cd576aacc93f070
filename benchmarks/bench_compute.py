"""Benchmark: ``pipeline`` against rasterio's documented ThreadPoolExecutor recipe.

What is measured
----------------
One run generates one deterministic synthetic GeoTIFF (``pipeline.testing``; ``--bands`` x
``--size`` x ``--size`` uint8, ``--block``-pixel tiles, deflate) and times, on that same input
and with the same thread count:

(a) the anchor: the "Concurrent processing" program of the rasterio documentation
    (``examples/thread_pool_executor.py``). The source is opened once; the destination is
    opened once with the source profile updated to tiled ``--block`` x ``--block`` blocks and
    pipeline's output compression (deflate, predictor 2, ``BIGTIFF=IF_SAFER``); a
    ``ThreadPoolExecutor(max_workers=threads)`` maps ``process(window)`` over
    ``dst.block_windows()``, which reads the window under a ``read_lock``, runs the kernel, and
    writes under a ``write_lock``. As in the documentation (GDAL < 3.11 form), one dataset handle
    per file is shared by all threads and serialised by the locks. The only change is that the
    ``executor.map`` results are consumed, so a failing window raises instead of being dropped.
(b) ``pipeline``: ``open_raster`` -> ``apply_kernel(..., "reverse-bands")`` -> ``write_raster``
    on a LocalCluster of 1 worker x ``threads`` threads (``processes=False``), timed from
    ``open_raster`` until the output file has been published (cluster start-up is printed
    separately and not included). (b) is also run on a 1 x 1 cluster to get its speedup over
    threads.

Both runners call the same numba kernel, ``pipeline.kernels.reverse_bands.reverse_bands``
(rasterio's "reverse bands inefficiently" seed: ~2000 float additions per value, ``nogil``), so
the work is CPU-bound and identical; the numba compilation is done once before any timing. What
differs is the machinery around it (dask graph, scheduler, per-thread read handles, the
``distributed.Lock`` around writes, temporary file + fsync + rename), which is what the ratio
(b)/(a) prices. Targets: ratio <= 1.05 and speedup 1 -> N threads >= 0.9 * N (1.8 on 2 cores).

Each repeat runs (a), (b) with N threads and (b) with 1 thread in turn (each (b) on a fresh
cluster), so slow phases of a shared machine hit all three alike; the best wall time of each is
kept. Besides wall time the table shows the CPU time of this process ("CPU here"; with
``processes=False`` it includes the dask worker threads, scheduler and event loop), the cores it
kept busy on average (CPU here / wall), and the CPU time other processes used meanwhile ("CPU
else", from ``/proc/stat``, Linux only). When others took more than 10% of the machine the
figures are flagged as unreliable; the ratio of CPU times (b)/(a) is printed too, as it prices
pipeline's extra work while being much less sensitive to other load than wall times.

Every output is read back and compared with the input with its bands reversed; a mismatch exits
with status 1. Missed performance targets are reported as FAIL but exit with status 0.

Usage::

    uv run python benchmarks/bench_compute.py                # 2048 x 2048 x 3, 2 threads
    uv run python benchmarks/bench_compute.py --size 4096    # 4x the work (~1 min per 1-thread run)
    uv run python benchmarks/bench_compute.py --threads 4 --repeat 3 --workdir /tmp/bench

The kernel runs at about 0.8 million values per second per core, so the default
2048 x 2048 x 3 input costs about 16 s of CPU; ``--size 4096`` (4x the work) gives steadier
figures on noisy machines, as does ``--repeat``. ``--block`` sets the input tiles, the anchor's
output tiles and pipeline's ``write_raster(max_block=...)`` alike.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.system
import distributed
import numba
import numpy as np
import rasterio
from rasterio.windows import Window
from stages import machine_busy_seconds

import pipeline
from pipeline.kernels.reverse_bands import reverse_bands
from pipeline.testing import write_synthetic_raster

RATIO_TARGET = 1.05
SPEEDUP_TARGET_PER_THREAD = 0.9


@dataclass(frozen=True)
class Run:
    """One timed run: wall time, CPU used by this process, CPU used by everything else."""

    wall: float
    own_cpu: float
    other_cpu: float | None


@dataclass
class Runner:
    """The timed runs of one runner and its one-off set-up costs (cluster start-ups)."""

    label: str
    runs: list[Run] = field(default_factory=list)
    setups: list[float] = field(default_factory=list)

    @property
    def best(self) -> Run:
        """The run with the smallest wall time."""
        return min(self.runs, key=lambda r: r.wall)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Time rasterio's ThreadPoolExecutor recipe against pipeline on one input."
    )
    parser.add_argument("--size", type=int, default=2048, help="raster height and width")
    parser.add_argument("--threads", type=int, default=2, help="threads for both runners")
    parser.add_argument("--bands", type=int, default=3, help="number of bands")
    parser.add_argument("--block", type=int, default=512, help="tile edge of input and outputs")
    parser.add_argument("--repeat", type=int, default=1, help="timings per runner; best is kept")
    parser.add_argument(
        "--workdir", default=None, help="folder for the input and outputs (kept); default: temp"
    )
    args = parser.parse_args(argv)
    for name in ("size", "threads", "bands", "block", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer")
    if args.block % 16:
        parser.error("--block must be a multiple of 16 (GeoTIFF tiles)")
    return args


@contextlib.contextmanager
def working_folder(path: str | None) -> Iterator[str]:
    """``path`` (created if needed) or a temporary folder removed afterwards."""
    if path is not None:
        os.makedirs(path, exist_ok=True)
        yield os.path.abspath(path)
        return
    with tempfile.TemporaryDirectory(prefix="bench-compute-") as tmp:
        yield tmp


def remove(path: str) -> None:
    """Delete ``path`` if it exists (between runs, outside the timed region)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def warm_up_numba() -> float:
    """Compile the kernel for 3-D uint8 arrays on a tiny input; return the seconds it took."""
    t0 = time.perf_counter()
    tiny = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    if not np.array_equal(reverse_bands(tiny), tiny[::-1]):
        raise SystemExit("reverse_bands kernel does not reverse bands on a tiny array")
    return time.perf_counter() - t0


def run_anchor(src_path: str, dst_path: str, *, threads: int, block: int) -> None:
    """rasterio docs ``examples/thread_pool_executor.py`` with pipeline's kernel and profile."""
    with rasterio.open(src_path) as src:
        profile = src.profile
        profile.update(
            driver="GTiff",
            blockxsize=block,
            blockysize=block,
            tiled=True,
            compress="deflate",
            predictor=2,
            BIGTIFF="IF_SAFER",
        )
        with rasterio.open(dst_path, "w", **profile) as dst:
            windows = [window for ij, window in dst.block_windows()]

            # One handle per file is shared by every thread, so reads and writes are locked.
            read_lock = threading.Lock()
            write_lock = threading.Lock()

            def process(window: Window) -> None:
                with read_lock:
                    src_array = src.read(window=window)

                # The computation runs concurrently (numba nogil).
                result = reverse_bands(src_array)

                with write_lock:
                    dst.write(result, window=window)

            with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as executor:
                # The docs discard the iterator; consuming it re-raises a worker's exception.
                list(executor.map(process, windows))


def run_pipeline(src_path: str, dst_path: str, *, block: int) -> None:
    """Open -> reverse-bands -> write with pipeline, on whatever client is the default."""
    out = pipeline.apply_kernel(pipeline.open_raster(src_path), "reverse-bands")
    pipeline.write_raster(out, dst_path, overwrite=True, max_block=block)


def timed(run: Callable[[], None]) -> Run:
    """Wall time of ``run`` and the CPU it and the rest of the machine used meanwhile."""
    busy0, cpu0, t0 = machine_busy_seconds(), time.process_time(), time.perf_counter()
    run()
    wall = time.perf_counter() - t0
    own = time.process_time() - cpu0
    busy1 = machine_busy_seconds()
    other = None if busy0 is None or busy1 is None else max(0.0, busy1 - busy0 - own)
    return Run(wall, own, other)


def time_anchor(runner: Runner, src: str, dst: str, *, threads: int, block: int) -> None:
    """One timed run of the anchor."""
    remove(dst)
    runner.runs.append(timed(lambda: run_anchor(src, dst, threads=threads, block=block)))


def time_pipeline(runner: Runner, src: str, dst: str, *, threads: int, block: int) -> None:
    """One timed run of pipeline on a fresh 1 x ``threads`` LocalCluster (start-up apart)."""
    remove(dst)
    t0 = time.perf_counter()
    client = pipeline.connect(
        threads_per_worker=threads, n_workers=1, dashboard_address="127.0.0.1:0", quiet=True
    )
    runner.setups.append(time.perf_counter() - t0)
    with client:
        nthreads = sum(client.nthreads().values())
        if nthreads != threads:
            raise SystemExit(f"LocalCluster has {nthreads} threads, expected {threads}")
        runner.runs.append(timed(lambda: run_pipeline(src, dst, block=block)))


def verify(src_path: str, dst_path: str, label: str) -> dict[str, Any]:
    """Fail loudly unless ``dst`` holds ``src`` with its bands reversed; return its layout."""
    with rasterio.open(src_path) as src:
        expected = src.read()[::-1]
    with rasterio.open(dst_path) as dst:
        actual = dst.read()
        layout = {
            "blocks": dst.block_shapes[0],
            "compress": dst.compression.value if dst.compression else None,
            "predictor": dst.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR"),
            "crs": dst.crs,
            "transform": dst.transform,
        }
    if actual.shape != expected.shape or actual.dtype != expected.dtype:
        raise SystemExit(
            f"FAILED: {label} output is {actual.dtype}{actual.shape}, "
            f"expected {expected.dtype}{expected.shape}"
        )
    if not np.array_equal(actual, expected):
        bad = int(np.count_nonzero(actual != expected))
        raise SystemExit(f"FAILED: {label} output differs from reversed input in {bad} values")
    return layout


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


def describe_chunks(src_path: str) -> str:
    """The chunking ``open_raster`` picks for the input (graph only, nothing is read)."""
    chunks = pipeline.open_raster(src_path).data.chunks
    ys, xs = chunks[1], chunks[2]
    return (
        f"{len(ys)} x {len(xs)} = {len(ys) * len(xs)} chunks of up to "
        f"{max(ys)} x {max(xs)} px ({len(chunks[0])} band chunk)"
    )


def report_line(label: str, run: Run, values: int) -> str:
    """One aligned row of the timing table."""
    other = "n/a" if run.other_cpu is None else f"{run.other_cpu:6.2f} s"
    return (
        f"{label:44s} {run.wall:7.2f} s  {values / run.wall / 1e6:5.2f}  "
        f"{run.own_cpu:7.2f} s  {run.own_cpu / run.wall:5.2f}  {other:>8s}"
    )


def main(argv: list[str] | None = None) -> int:
    """Generate the input, time the runners (interleaved), verify outputs, print the figures."""
    args = parse_args(argv)
    threads: int = args.threads
    block: int = args.block
    speedup_target = SPEEDUP_TARGET_PER_THREAD * threads
    cpus = dask.system.CPU_COUNT
    with working_folder(args.workdir) as folder:
        src = os.path.join(folder, f"input-{args.bands}x{args.size}x{args.size}.tif")
        dst_a = os.path.join(folder, "out-anchor.tif")
        dst_bn = os.path.join(folder, f"out-pipeline-{threads}t.tif")
        dst_b1 = os.path.join(folder, "out-pipeline-1t.tif")

        write_synthetic_raster(
            src, bands=args.bands, height=args.size, width=args.size, block=block, dtype="uint8"
        )
        compile_s = warm_up_numba()
        values = args.bands * args.size * args.size

        print("bench_compute: rasterio docs ThreadPoolExecutor recipe vs pipeline")
        print(
            f"  versions      : pipeline {pipeline.__version__}, rasterio {rasterio.__version__} "
            f"(GDAL {rasterio.__gdal_version__}), dask {dask.__version__}, "
            f"distributed {distributed.__version__}, numba {numba.__version__}, "
            f"Python {sys.version.split()[0]}"
        )
        print(f"  CPUs (dask)   : {cpus}")
        print(
            f"  input         : {args.bands} x {args.size} x {args.size} uint8 "
            f"({values / 1e6:.1f} M values), {block} px tiles, deflate"
        )
        print(f"  pipeline open : {describe_chunks(src)}")
        print(f"  threads       : {threads}    repeat: {args.repeat} (interleaved, best kept)")
        print(f"  numba warm-up : {compile_s:.2f} s (compile, not timed below)")
        print(flush=True)

        a = Runner(f"(a) anchor: rasterio docs recipe, {threads} thr")
        bn = Runner(f"(b) pipeline: LocalCluster 1 x {threads} thr")
        b1 = Runner("(b) pipeline: LocalCluster 1 x 1 thr")
        for _ in range(args.repeat):
            time_anchor(a, src, dst_a, threads=threads, block=block)
            time_pipeline(bn, src, dst_bn, threads=threads, block=block)
            time_pipeline(b1, src, dst_b1, threads=1, block=block)
        layouts = {
            "(a)": verify(src, dst_a, a.label),
            f"(b) {threads} thr": verify(src, dst_bn, bn.label),
            "(b) 1 thr": verify(src, dst_b1, b1.label),
        }

        print(
            f"{'runner (best of ' + str(args.repeat) + ')':44s} {'wall':>9s}  {'Mv/s':>5s}  "
            f"{'CPU here':>9s}  {'cores':>5s}  {'CPU else':>8s}"
        )
        for runner in (a, bn, b1):
            print(report_line(runner.label, runner.best, values))
        print(
            f"cluster start-up, excluded from (b): 1 x {threads} thr {bn.setups[0]:.2f} s "
            f"(first in this process), 1 x 1 thr {b1.setups[0]:.2f} s"
        )
        print()
        ratio = bn.best.wall / a.best.wall
        speedup = b1.best.wall / bn.best.wall
        print(
            f"ratio (b)/(a), {threads} threads         {ratio:6.3f}   "
            f"target <= {RATIO_TARGET:.2f}   {verdict(ratio <= RATIO_TARGET)}"
        )
        print(
            f"speedup (b) 1 -> {threads} threads      {speedup:6.2f}x  "
            f"target >= {speedup_target:.2f}   {verdict(speedup >= speedup_target)}"
        )
        cpu_ratio = bn.best.own_cpu / a.best.own_cpu
        print(
            f"CPU time (b)/(a), {threads} threads      {cpu_ratio:6.3f}   "
            "(information: machinery overhead, little affected by other load)"
        )
        print()
        print("outputs verified: each equals the input with its bands reversed")
        for label, layout in layouts.items():
            print(
                f"  {label:9s} tiles {layout['blocks'][0]} x {layout['blocks'][1]}, "
                f"compress {layout['compress']}, predictor {layout['predictor']}"
            )
        noisy = [
            r.label
            for r in (a, bn, b1)
            if r.best.other_cpu is not None and r.best.other_cpu > 0.1 * r.best.wall * cpus
        ]
        if noisy:
            print(
                "WARNING: other processes used more than 10% of the machine's CPU during: "
                + "; ".join(noisy)
                + ". Figures are unreliable; rerun on a quiet machine or with --repeat."
            )
        if args.workdir is not None:
            print(f"files kept in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
