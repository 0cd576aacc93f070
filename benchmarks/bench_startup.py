"""Benchmark: whole ``pipeline`` commands against their anchors, start-up included (issue 14.3).

What is measured
----------------
Every timing is one whole process, started as a user starts it: interpreter start-up, imports,
numba compilation, the work and the exit are all inside the wall time. Two pairs are timed:

(1) ``pipeline reproject byte.tif OUT --dst-crs EPSG:3857 --overwrite --no-progress`` against
    ``rio warp byte.tif OUT2 --dst-crs EPSG:3857 --overwrite``. ``byte.tif`` is the 20 x 20
    one-block raster of the shared test data (``PIPELINE_SHARED_DATA``, else ``../shared/data``
    next to the repository, as in the tests), so the work is negligible and the pair prices
    start-up. Target: pipeline <= 1.5x ``rio warp``.
(2) ``pipeline compute IN OUT --kernel reverse-bands`` (in this process, 2 threads on the project
    machine: the job is far below the 256 MiB cluster threshold) against the "Concurrent
    processing" recipe of the rasterio documentation run as its own process,
    ``python recipe.py IN OUT``. The recipe is the anchor of ``bench_compute.py`` written to the
    working folder: one shared handle per file, ``read_lock``/``write_lock``, a
    ``ThreadPoolExecutor(max_workers=2)`` over ``dst.block_windows()`` calling the same numba
    kernel ``pipeline.kernels.reverse_bands.reverse_bands`` (compiled in each process, as
    pipeline compiles it), output tiled 512, deflate, predictor 2 like pipeline's. ``IN`` is a
    generated 3 x ``--size`` x ``--size`` uint8 GeoTIFF (``pipeline.testing``, 512 px tiles,
    deflate). Target: pipeline <= 1.05x the recipe. Both outputs are read back after the runs and
    must equal the input with its bands reversed; otherwise the script exits with status 1.

Every command is run from the virtual environment's ``bin`` folder directly (the folder of
``sys.executable``: ``pipeline``, ``rio`` and ``python``). Through ``uv run`` each command would
cost more, by the same amount for both members of a pair: uv re-checks the environment and its
bytecode on every run. The ``--repeats`` runs of the four commands are interleaved (pair (1),
then pair (2), the order within each pair alternating between repeats), so slow phases of a
shared machine hit anchor and pipeline alike; one untimed run of pair (1) warms the page cache
first. For each command the table shows the median and min wall time and the median CPU time of
the child (user + sys, ``resource.getrusage(RUSAGE_CHILDREN)`` deltas). Ratios are
pipeline / anchor on median wall times (the ratio of min wall times is shown beside it).

The load average is printed before and after. The CPU time the rest of the machine used while a
command ran comes from ``/proc/stat`` (Linux only); when it exceeds 10% of the machine over a
command's runs, the figures of that command are flagged as unreliable. Missed targets are
reported as FAIL but exit with status 0.

Usage::

    uv run python benchmarks/bench_startup.py               # 7 repeats, 2048 x 2048 x 3 input
    uv run python benchmarks/bench_startup.py --repeats 3 --workdir /tmp/bench-startup

At the defaults it runs in about 2 minutes on 2 cores, mostly in pair (2) (~7 s per run).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from stages import machine_busy_seconds

from pipeline.testing import write_synthetic_raster

REPROJECT_TARGET = 1.5
COMPUTE_TARGET = 1.05
RECIPE_THREADS = 2
BLOCK = 512
NOISE_LIMIT = 0.10

#: rasterio docs ``examples/thread_pool_executor.py``, as the anchor of ``bench_compute.py``.
RECIPE = f'''\
"""rasterio docs "Concurrent processing" recipe with pipeline's kernel and output profile."""

import concurrent.futures
import sys
import threading

import rasterio

from pipeline.kernels.reverse_bands import reverse_bands


def main(infile, outfile, num_workers={RECIPE_THREADS}):
    with rasterio.open(infile) as src:
        profile = src.profile
        profile.update(
            driver="GTiff",
            blockxsize={BLOCK},
            blockysize={BLOCK},
            tiled=True,
            compress="deflate",
            predictor=2,
            BIGTIFF="IF_SAFER",
        )
        with rasterio.open(outfile, "w", **profile) as dst:
            windows = [window for ij, window in dst.block_windows()]

            # One handle per file is shared by every thread, so reads and writes are locked.
            read_lock = threading.Lock()
            write_lock = threading.Lock()

            def process(window):
                with read_lock:
                    src_array = src.read(window=window)

                # The computation runs concurrently (numba nogil).
                result = reverse_bands(src_array)

                with write_lock:
                    dst.write(result, window=window)

            with concurrent.futures.ThreadPoolExecutor(max_workers=num_workers) as executor:
                # The docs discard the iterator; consuming it re-raises a worker's exception.
                list(executor.map(process, windows))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
'''


@dataclass(frozen=True)
class Run:
    """One timed process: wall time, its CPU time, CPU time of everything else meanwhile."""

    wall: float
    cpu: float
    other_cpu: float | None


@dataclass
class Command:
    """One command line, the file it writes, and its timed runs."""

    label: str
    argv: list[str]
    output: str
    runs: list[Run] = field(default_factory=list)

    @property
    def median_wall(self) -> float:
        """Median wall time of the runs."""
        return statistics.median(r.wall for r in self.runs)

    @property
    def min_wall(self) -> float:
        """Smallest wall time of the runs."""
        return min(r.wall for r in self.runs)

    @property
    def median_cpu(self) -> float:
        """Median CPU time (user + sys) of the runs."""
        return statistics.median(r.cpu for r in self.runs)

    def noise(self, cpus: int) -> float | None:
        """Share of the machine other processes used over all runs; None off Linux."""
        others = [r.other_cpu for r in self.runs]
        if any(o is None for o in others):
            return None
        return sum(o for o in others if o is not None) / (sum(r.wall for r in self.runs) * cpus)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Time whole pipeline commands (start-up included) against their anchors."
    )
    parser.add_argument("--repeats", type=int, default=7, help="runs per command (interleaved)")
    parser.add_argument("--size", type=int, default=2048, help="height and width of pair (2)")
    parser.add_argument(
        "--workdir", default=None, help="folder for the input and outputs (kept); default: temp"
    )
    args = parser.parse_args(argv)
    for name in ("repeats", "size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer")
    return args


def shared_data_dir() -> pathlib.Path:
    """The shared test rasters: ``PIPELINE_SHARED_DATA``, else ``../shared/data`` (as the tests)."""
    env = os.environ.get("PIPELINE_SHARED_DATA")
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@contextlib.contextmanager
def working_folder(path: str | None) -> Iterator[str]:
    """``path`` (created if needed) or a temporary folder removed afterwards."""
    if path is not None:
        os.makedirs(path, exist_ok=True)
        yield os.path.abspath(path)
        return
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        yield tmp


def children_cpu() -> float:
    """User + sys seconds of all waited-for child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(command: Command, cwd: str) -> None:
    """Run ``command`` once as its own process (its output removed first) and record it."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(command.output)
    busy0, own0, child0 = machine_busy_seconds(), time.process_time(), children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(command.argv, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    cpu = children_cpu() - child0
    own = time.process_time() - own0
    busy1 = machine_busy_seconds()
    if proc.returncode != 0:
        raise SystemExit(
            f"FAILED: {command.label} exited with status {proc.returncode}\n"
            f"  command: {' '.join(command.argv)}\n{proc.stdout}{proc.stderr}"
        )
    other = None if busy0 is None or busy1 is None else max(0.0, busy1 - busy0 - cpu - own)
    command.runs.append(Run(wall, cpu, other))


def verify_reversed(src_path: str, dst_path: str, label: str) -> dict[str, Any]:
    """Fail unless ``dst`` holds ``src`` with its bands reversed; return its layout."""
    with rasterio.open(src_path) as src:
        expected = src.read()[::-1]
    with rasterio.open(dst_path) as dst:
        actual = dst.read()
        layout = {
            "blocks": dst.block_shapes[0],
            "compress": dst.compression.value if dst.compression else None,
            "predictor": dst.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR"),
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


def check_reprojected(path: str, label: str) -> tuple[int, int]:
    """Fail unless ``path`` is a raster in EPSG:3857; return its (height, width)."""
    with rasterio.open(path) as ds:
        if ds.crs is None or ds.crs.to_epsg() != 3857:
            raise SystemExit(f"FAILED: {label} output CRS is {ds.crs!r}, expected EPSG:3857")
        return ds.height, ds.width


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def report(pair: str, anchor: Command, pipe: Command, target: float, cpus: int) -> list[str]:
    """Table rows, ratio line and noise warnings of one pair; returns the noisy labels."""
    for cmd in (anchor, pipe):
        print(
            f"  {cmd.label:36s} {cmd.median_wall:8.2f} s {cmd.min_wall:8.2f} s "
            f"{cmd.median_cpu:9.2f} s"
        )
    ratio = pipe.median_wall / anchor.median_wall
    min_ratio = pipe.min_wall / anchor.min_wall
    print(
        f"  ratio {pair} pipeline / anchor        {ratio:8.3f}   (min/min {min_ratio:.3f})   "
        f"target <= {target:.2f}   {verdict(ratio <= target)}"
    )
    noisy = []
    for cmd in (anchor, pipe):
        share = cmd.noise(cpus)
        if share is not None and share > NOISE_LIMIT:
            noisy.append(f"{cmd.label} ({share:.0%})")
    return noisy


def main(argv: list[str] | None = None) -> int:
    """Prepare inputs, time the four commands (interleaved), verify outputs, print the figures."""
    args = parse_args(argv)
    bindir = os.path.dirname(sys.executable)
    cpus = os.cpu_count() or 1
    byte_tif = shared_data_dir() / "byte.tif"
    if not byte_tif.is_file():
        raise SystemExit(f"test raster not found: {byte_tif}; set PIPELINE_SHARED_DATA")
    for tool in ("pipeline", "rio"):
        if not os.access(os.path.join(bindir, tool), os.X_OK):
            raise SystemExit(f"{tool!r} not found in {bindir}; run `uv sync` first")

    with working_folder(args.workdir) as folder:
        src = os.path.join(folder, f"input-3x{args.size}x{args.size}.tif")
        write_synthetic_raster(
            src, bands=3, height=args.size, width=args.size, block=BLOCK, dtype="uint8"
        )
        recipe = os.path.join(folder, "recipe.py")
        with open(recipe, "w", encoding="utf-8") as f:
            f.write(RECIPE)

        def out(name: str) -> str:
            return os.path.join(folder, name)

        rio = os.path.join(bindir, "rio")
        pipe = os.path.join(bindir, "pipeline")
        rio_warp = Command(
            "(1) rio warp (anchor)",
            [
                rio,
                "warp",
                str(byte_tif),
                out("warp-rio.tif"),
                "--dst-crs",
                "EPSG:3857",
                "--overwrite",
            ],
            out("warp-rio.tif"),
        )
        pipe_reproject = Command(
            "(1) pipeline reproject",
            [
                pipe,
                "reproject",
                str(byte_tif),
                out("warp-pipe.tif"),
                "--dst-crs",
                "EPSG:3857",
                "--overwrite",
                "--no-progress",
            ],
            out("warp-pipe.tif"),
        )
        recipe_run = Command(
            "(2) python recipe.py (anchor)",
            [sys.executable, recipe, src, out("compute-recipe.tif")],
            out("compute-recipe.tif"),
        )
        pipe_compute = Command(
            "(2) pipeline compute",
            [pipe, "compute", src, out("compute-pipe.tif"), "--kernel", "reverse-bands"],
            out("compute-pipe.tif"),
        )
        pairs = [(rio_warp, pipe_reproject), (recipe_run, pipe_compute)]

        print("bench_startup: whole processes, start-up included (issue 14 point 3)")
        print(
            f"  versions   : rasterio {rasterio.__version__} (GDAL {rasterio.__gdal_version__}), "
            f"Python {sys.version.split()[0]}; CPUs {cpus}"
        )
        print(f"  bin        : {bindir}")
        print(f"  (1) input  : {byte_tif}")
        print(
            f"  (2) input  : 3 x {args.size} x {args.size} uint8, {BLOCK} px tiles, deflate; "
            f"recipe threads {RECIPE_THREADS}"
        )
        for a, b in pairs:
            for cmd in (a, b):
                shown = [os.path.basename(cmd.argv[0])] + [
                    os.path.relpath(v, folder) if v.startswith(folder) else v for v in cmd.argv[1:]
                ]
                print(f"  {cmd.label:30s}: {' '.join(shown)}")
        print(f"  repeats    : {args.repeats} (interleaved; median and min kept)")
        print(f"  load avg   : {load_average()} (before)", flush=True)

        t_start = time.perf_counter()
        for cmd in pairs[0]:  # untimed warm-up: page cache for Python, GDAL and PROJ
            run_timed(cmd, folder)
            cmd.runs.clear()
        for i in range(args.repeats):
            for a, b in pairs:
                for cmd in (a, b) if i % 2 == 0 else (b, a):
                    run_timed(cmd, folder)
        elapsed = time.perf_counter() - t_start
        load_after = load_average()

        layouts = {cmd.label: verify_reversed(src, cmd.output, cmd.label) for cmd in pairs[1]}
        shapes = {cmd.label: check_reprojected(cmd.output, cmd.label) for cmd in pairs[0]}

        print()
        print(f"  {'command':36s} {'med wall':>10s} {'min wall':>10s} {'med CPU':>11s}")
        noisy = report("(1)", rio_warp, pipe_reproject, REPROJECT_TARGET, cpus)
        noisy += report("(2)", recipe_run, pipe_compute, COMPUTE_TARGET, cpus)
        print()
        print(f"  load avg   : {load_after} (after); timed runs took {elapsed:.0f} s")
        print("  outputs    : (2) both equal the input with its bands reversed")
        for label, layout in layouts.items():
            print(
                f"               {label}: tiles {layout['blocks'][0]} x {layout['blocks'][1]}, "
                f"compress {layout['compress']}, predictor {layout['predictor']}"
            )
        print(
            "               (1) both in EPSG:3857: "
            + ", ".join(f"{label} {h} x {w}" for label, (h, w) in shapes.items())
        )
        if noisy:
            print(
                f"WARNING: other processes used more than {NOISE_LIMIT:.0%} of the machine "
                "during: " + "; ".join(noisy) + ". Figures are unreliable; rerun on a quiet "
                "machine."
            )
        if args.workdir is not None:
            print(f"files kept in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
