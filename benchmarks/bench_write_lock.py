"""Benchmark: compressing under the write lock on one core or on all of them (issue 14.4).

Every output chunk is written under one lock (rioxarray's ``to_raster``: open, write the chunk,
close), so GDAL compresses the chunk's tiles while every other task waits for the lock. With
``pipeline.write.compress-threads: 1`` the holder compresses alone; with the default ``0`` the
holder's ``GDAL_NUM_THREADS`` is the process's cores while it holds the lock, once the
process's threads wait for the lock (`pipeline.io.locks.CompressingLock`), so the tiles are
compressed in parallel and the lock is free sooner. Each job runs as a whole ``pipeline``
process (start-up included), the two settings interleaved, ``--repeats`` times:

- ``compute``: ``pipeline compute IN OUT --kernel focal-mean`` (a cheap kernel and a float32
  output: compression is most of the work, so the lock is the bottleneck);
- ``reproject``: ``pipeline reproject IN OUT --dst-crs EPSG:3857 --resampling bilinear`` (the
  warp is most of the work).

``IN`` is the ``--size`` x ``--size`` x 3 uint8 raster of ``bench_reproject.py``. Printed: the
median wall and CPU time of each setting, the ratio (default / one thread), and whether the
outputs have the same pixels. The machine's CPU used by others while the runs went on is shown
(``stages.machine_busy_seconds``); above 10% of the machine the figures are flagged.

Usage::

    uv run python benchmarks/bench_write_lock.py                 # 8192, 3 repeats
    uv run python benchmarks/bench_write_lock.py --size 4096 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import rasterio

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_reproject import make_input
from stages import machine_busy_seconds

JOBS = {
    "compute": ["compute", "{src}", "{dst}", "--kernel", "focal-mean"],
    "reproject": ["reproject", "{src}", "{dst}", "--dst-crs", "EPSG:3857", "--resampling",
                  "bilinear"],
}  # fmt: skip
SETTINGS = {"one thread": "1", "default (by contention)": "0"}


def run(job: str, setting: str, src: pathlib.Path, dst: pathlib.Path) -> tuple[float, float]:
    """Wall and CPU seconds of one whole ``pipeline`` process."""
    exe = str(pathlib.Path(sys.executable).with_name("pipeline"))
    args = [a.format(src=src, dst=dst) for a in JOBS[job]]
    env = {**os.environ, "DASK_PIPELINE__WRITE__COMPRESS_THREADS": SETTINGS[setting]}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([exe, *args, "--overwrite", "--no-progress"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu


def same_pixels(a: pathlib.Path, b: pathlib.Path) -> bool:
    with rasterio.open(a) as x, rasterio.open(b) as y:
        return all(
            np.array_equal(x.read(window=w), y.read(window=w), equal_nan=True)
            for _, w in x.block_windows(1)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    parser.add_argument("--workdir", type=pathlib.Path, default=None)
    args = parser.parse_args()
    work = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="bench-write-lock-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"in-{args.size}.tif"
    if not src.exists():
        make_input(src, args.size)
    print(f"bench_write_lock: {args.size} x {args.size} x 3 uint8, {os.cpu_count()} CPUs, "
          f"{args.repeats} interleaved repeats, whole processes")  # fmt: skip
    for job in args.jobs:
        times: dict[str, list[tuple[float, float]]] = {s: [] for s in SETTINGS}
        outs = {s: work / f"{job}-{i}.tif" for i, s in enumerate(SETTINGS)}
        busy0, own = machine_busy_seconds(), 0.0
        wall0 = time.perf_counter()
        for r in range(args.repeats):
            order = list(SETTINGS) if r % 2 == 0 else list(reversed(SETTINGS))
            for setting in order:
                wall, cpu = run(job, setting, src, outs[setting])
                times[setting].append((wall, cpu))
                own += cpu
        busy1, elapsed = machine_busy_seconds(), time.perf_counter() - wall0
        print(f"\n  {job}: pipeline {' '.join(JOBS[job][:1])} ... (--kernel/--dst-crs as above)")
        med = {}
        for setting, runs in times.items():
            med[setting] = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            walls = " ".join(f"{w:.2f}" for w, _ in runs)
            print(f"    {setting:22s} median wall {med[setting]:6.2f} s  CPU {cpu:6.2f} s"
                  f"  (walls {walls})")  # fmt: skip
        ratio = med["default (by contention)"] / med["one thread"]
        print(f"    default / one thread: {ratio:.3f}x wall; same pixels: "
              f"{same_pixels(*outs.values())}")  # fmt: skip
        if busy0 is not None and busy1 is not None:
            others = max(0.0, busy1 - busy0 - own)
            share = others / (elapsed * (os.cpu_count() or 1))
            flag = "  UNRELIABLE: other load" if share > 0.10 else ""
            print(f"    others used {share:.0%} of the machine meanwhile{flag}")


if __name__ == "__main__":
    main()
