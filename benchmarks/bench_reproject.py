"""Benchmark: ``pipeline reproject`` against GDAL's and the Python ecosystem's reprojections.

One run generates a deterministic ``--size`` x ``--size`` x 3 uint8 GeoTIFF in UTM 18N (512-pixel
tiles, deflate) and reprojects it to EPSG:3857 with bilinear resampling into a tiled, deflate
GeoTIFF, each runner in its own subprocess:

(a) ``rio warp --threads N`` (GDAL's streaming, multithreaded warper): the anchor;
(b) ``rasterio.warp.reproject(..., num_threads=N)`` on the whole array, then a write;
(c) rioxarray: ``open_rasterio`` -> ``.rio.reproject`` -> ``.rio.to_raster``;
(d) odc-geo ``xr_reproject`` on dask -- skipped when odc-geo is not installed (it is not a
    dependency of this project);
(e) ``pipeline reproject`` with its defaults (LocalCluster of 1 worker x N threads): GDAL's
    approximate transformer with its 0.125-pixel error threshold, as (a)-(c) use;
(f) ``pipeline reproject --et 0``: the exact transformer.

For each: wall time (process start to exit, imports included), CPU time (user + sys of the
process and the children it waited for, from ``getrusage(RUSAGE_CHILDREN)``), peak memory of
the largest process and summed over the process tree (sampled every 20 ms with psutil), output
size, and ratios against (a). Targets for (e): wall <= 0.8 x (a); peak memory of the largest
process <= (a)'s; peak memory growing by less than 10% when the input grows 4x (pass two sizes,
e.g. ``--sizes 8192 16384``); output size <= 1.05 x (a)'s deflate output. Printed for (f) too.

Stage table, for (e) and (f): the same job run again in one process (``--stages``; the
default thread LocalCluster, so its workers are threads of that process), with the pipeline's
real functions wrapped by thread-CPU timers (``stages.py``): decode = source reads
(``pipeline.io.files.read_window``, through which every source window and chunk is read); warp =
``pipeline.warp.engine.warp_window`` (as called by ``pipeline.warp.tile``: /vsimem copy + GDAL
warp); encode = rioxarray's ``RasterioWriter.__setitem__``, which opens the output, writes one
chunk and closes it, so GDAL compresses and writes that chunk's tiles (deflate) inside the
call (the stage run sets ``pipeline.write.compress-threads: 1`` so that GDAL compresses in the
calling thread; the timed runs use the default, all cores under the lock); other = the process's
whole CPU time (``getrusage(RUSAGE_SELF)``: interpreter start, imports, cluster start, graph,
scheduling, metadata, verification) minus the three. The physical limit on this machine is the
sum of the four divided by the cores; wall / limit says how far the timed run is from it.

Usage::

    uv run python benchmarks/bench_reproject.py                       # 8192, all runners
    uv run python benchmarks/bench_reproject.py --sizes 8192 16384 --runners a e
    uv run python benchmarks/bench_reproject.py --runners a e f      # both transformers
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
import psutil
import rasterio
from rasterio.transform import from_origin

CREATION = {"tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
RUNNERS = {
    "a": "rio warp --threads N",
    "b": "rasterio.warp.reproject (whole array)",
    "c": "rioxarray .rio.reproject",
    "d": "odc-geo xr_reproject (dask)",
    "e": "pipeline reproject (defaults: approx 0.125)",
    "f": "pipeline reproject --et 0 (exact)",
}


def make_input(path: pathlib.Path, size: int) -> None:
    """A smooth, noisy 3-band uint8 raster written strip by strip (bounded memory)."""
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32618",
        "transform": from_origin(400000.0, 4600000.0, 10.0, 10.0),
        "nodata": 0,
        **CREATION,
    }
    rng = np.random.default_rng(0)
    x = np.linspace(0, 40 * np.pi, size)[None, :]
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size, 512):
            rows = min(512, size - row)
            y = np.linspace(0, 40 * np.pi, size)[row : row + rows, None]
            for b in range(3):
                value = (
                    128
                    + 100 * np.sin(x * (1 + 0.2 * b)) * np.cos(y)
                    + rng.normal(0, 8, (rows, size))
                )
                block = np.clip(value, 1, 255).astype("uint8")
                dst.write(block, b + 1, window=rasterio.windows.Window(0, row, size, rows))


def command(runner: str, src: pathlib.Path, dst: pathlib.Path, threads: int) -> list[str]:
    """The subprocess that runs one runner."""
    py = [sys.executable, "-c"]
    if runner == "a":
        rio = str(pathlib.Path(sys.executable).with_name("rio"))
        cos = [f"--co={k.upper()}={v}" for k, v in CREATION.items()]
        return [rio, "warp", str(src), str(dst), "--dst-crs", "EPSG:3857", "--resampling",
                "bilinear", "--threads", str(threads), *cos, "--overwrite"]  # fmt: skip
    if runner == "b":
        return [
            *py,
            f"""
import rasterio, numpy as np
from rasterio.warp import calculate_default_transform, reproject, Resampling
with rasterio.open({str(src)!r}) as s:
    t, w, h = calculate_default_transform(s.crs, 'EPSG:3857', s.width, s.height, *s.bounds)
    out = np.zeros((s.count, h, w), 'uint8')
    reproject(s.read(), out, src_transform=s.transform, src_crs=s.crs, dst_transform=t,
              dst_crs='EPSG:3857', resampling=Resampling.bilinear, src_nodata=0, dst_nodata=0,
              num_threads={threads})
    profile = dict(s.profile, transform=t, width=w, height=h, crs='EPSG:3857')
with rasterio.open({str(dst)!r}, 'w', **profile) as d:
    d.write(out)
""",
        ]
    if runner == "c":
        return [
            *py,
            f"""
import rioxarray
from rasterio.enums import Resampling
da = rioxarray.open_rasterio({str(src)!r})
out = da.rio.reproject('EPSG:3857', resampling=Resampling.bilinear, num_threads={threads})
out.rio.to_raster({str(dst)!r}, tiled=True, blockxsize=512, blockysize=512, compress='deflate')
""",
        ]
    if runner == "d":
        return [
            *py,
            f"""
import rioxarray, odc.geo.xr
from odc.geo.geobox import GeoBox
da = rioxarray.open_rasterio({str(src)!r}, chunks={{'x': 2048, 'y': 2048}})
out = odc.geo.xr.xr_reproject(da, 'EPSG:3857', resampling='bilinear')
out.rio.to_raster({str(dst)!r}, tiled=True, blockxsize=512, blockysize=512, compress='deflate')
""",
        ]
    if runner in ("e", "f"):
        return [
            *py,
            f"""
from pipeline.cli.reproject import reproject
reproject.main({pipeline_args(runner, src, dst, threads)!r}, standalone_mode=True)
""",
        ]
    raise ValueError(runner)


def pipeline_args(runner: str, src: pathlib.Path, dst: pathlib.Path, threads: int) -> list[str]:
    """``pipeline reproject`` arguments of runner (e) or (f), as a user types them: the
    pipeline picks where it runs (in this process for a job up to 256 MiB, else a LocalCluster
    sized to the machine; ``threads`` is the machine's core count either way)."""
    return [str(src), str(dst), "--dst-crs", "EPSG:3857", "--resampling", "bilinear",
            "--no-progress", "--overwrite", *(["--et", "0"] if runner == "f" else [])]  # fmt: skip


def _cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def stage_run(runner: str, src: pathlib.Path, dst: pathlib.Path, threads: int) -> dict[str, float]:
    """Runner (e) or (f) in this process with its stages timed (CPU seconds; see the module
    docstring). Run in a fresh subprocess (``--stages``) so the totals are this job's alone."""
    from rioxarray.raster_writer import RasterioWriter

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from stages import StageTimer

    from pipeline.cli.reproject import reproject
    from pipeline.io import files as io_files
    from pipeline.warp import tile

    timer = StageTimer()
    timer.wrap(io_files, "read_window", "decode")
    timer.wrap(tile, "warp_window", "warp")
    timer.wrap(RasterioWriter, "__setitem__", "encode")
    start = time.perf_counter()
    reproject.main(pipeline_args(runner, src, dst, threads), standalone_mode=False)
    wall = time.perf_counter() - start
    timer.restore()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    stages = {k: timer.total_cpu(k) for k in ("decode", "warp", "encode")}
    return {
        **stages,
        "other": ru.ru_utime + ru.ru_stime - sum(stages.values()),
        "wall_in_process": wall,
        "calls": {k: len(v) for k, v in timer.cpu.items()},
    }


def measure(cmd: list[str]) -> dict[str, Any]:
    """Wall time, CPU time (user + sys, children included), peak memory summed over the process
    tree and of its largest process, of one subprocess."""
    cpu = _cpu_children()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peak = peak_proc = 0
    while proc.poll() is None:
        try:
            rss = [p.memory_info().rss for p in [root, *root.children(recursive=True)]]
            peak, peak_proc = max(peak, sum(rss)), max(peak_proc, *rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - start
    out, err = proc.communicate()
    return {
        "wall": wall,
        "cpu": _cpu_children() - cpu,
        "peak": peak,
        "peak_proc": peak_proc,
        "rc": proc.returncode,
        "err": (err or out)[-400:],
        "out": out,
    }


def print_ratios(results: dict[str, dict[str, Any]], *, indent: int) -> None:
    """Wall time and peak memory of every successful runner against anchor (a)'s."""
    anchor = results["a"]
    for runner, r in results.items():
        if runner != "a" and r["rc"] == 0:
            print(f"{' ' * indent}({runner}) / (a): wall {r['wall'] / anchor['wall']:.2f}x, "
                  f"CPU {r['cpu'] / anchor['cpu']:.2f}x, "
                  f"peak memory {r['peak'] / anchor['peak']:.2f}x (tree), "
                  f"{r['peak_proc'] / anchor['peak_proc']:.2f}x (largest process)")  # fmt: skip


def available(runner: str) -> bool:
    """odc-geo is optional."""
    if runner != "d":
        return True
    try:
        import odc.geo  # noqa: F401
    except ImportError:
        return False
    return True


def print_stages(
    results: dict[str, dict[str, Any]], stages: dict[str, dict[str, Any]], threads: int
) -> None:
    """CPU seconds per stage of (e)/(f), the physical limit and wall / limit."""
    print(
        f"       {'stage CPU s (one-process run)':32s}"
        + "".join(f"{'(' + r + ')':>9s}" for r in stages)
    )
    for key in ("decode", "warp", "encode", "other"):
        print(f"         {key:30s}" + "".join(f"{st[key]:9.2f}" for st in stages.values()))
    limits = {
        r: sum(st[k] for k in ("decode", "warp", "encode", "other")) / threads
        for r, st in stages.items()
    }
    print(
        f"         {'limit = sum / ' + str(threads) + ' cores':30s}"
        + "".join(f"{v:9.2f}" for v in limits.values())
    )
    print(
        f"         {'wall of the timed run':30s}"
        + "".join(f"{results[r]['wall']:9.2f}" for r in stages)
    )
    print(
        f"         {'wall / limit':30s}"
        + "".join(f"{results[r]['wall'] / limits[r]:8.2f}x" for r in stages)
    )
    anchor = results.get("a")
    if anchor and anchor["rc"] == 0:
        print(f"         {'(a) rio warp: CPU ' + format(anchor['cpu'], '.2f') + ' s, limit':30s}"
              f"{anchor['cpu'] / threads:9.2f}")  # fmt: skip


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8192])
    parser.add_argument("--threads", type=int, default=psutil.cpu_count() or 1)
    parser.add_argument("--runners", nargs="+", default=list(RUNNERS), choices=list(RUNNERS))
    parser.add_argument("--workdir", type=pathlib.Path)
    parser.add_argument("--no-stages", action="store_true", help="skip the stage table")
    parser.add_argument("--stages", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stages:
        runner, src_arg, dst_arg, threads = args.stages
        res = stage_run(runner, pathlib.Path(src_arg), pathlib.Path(dst_arg), int(threads))
        print(json.dumps(res))
        return
    workdir = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="bench-reproject-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"rasterio {rasterio.__version__} / GDAL {rasterio.__gdal_version__}, "
          f"{args.threads} threads, workdir {workdir}")  # fmt: skip
    peaks_e: dict[int, int] = {}
    for size in args.sizes:
        src = workdir / f"in-{size}.tif"
        if not src.exists():
            t = time.perf_counter()
            make_input(src, size)
            print(f"generated {src.name} in {time.perf_counter() - t:.1f} s")
        results: dict[str, dict[str, Any]] = {}
        for runner in args.runners:
            if not available(runner):
                print(f"({runner}) {RUNNERS[runner]}: skipped (not installed)")
                continue
            dst = workdir / f"out-{size}-{runner}.tif"
            results[runner] = r = measure(command(runner, src, dst, args.threads))
            r["size"] = dst.stat().st_size if dst.exists() else 0
            os.environ.get("KEEP_OUTPUTS") or dst.unlink(missing_ok=True)
            status = "ok" if r["rc"] == 0 else f"FAILED rc={r['rc']}: {r['err']}"
            print(f"{size:6d} ({runner}) {RUNNERS[runner]:43s} {r['wall']:6.1f} s wall "
                  f"{r['cpu']:6.1f} s CPU {r['peak_proc'] / 2**20:6.0f} MiB "
                  f"({r['peak'] / 2**20:.0f} tree) {r['size'] / 2**20:6.1f} MiB out  "
                  f"{status}")  # fmt: skip
        anchor = results.get("a")
        if anchor and anchor["rc"] == 0:
            print_ratios(results, indent=7)
        if "e" in results and results["e"]["rc"] == 0:
            peaks_e[size] = results["e"]["peak_proc"]
        for runner in ("e", "f"):
            r = results.get(runner)
            if r and r["rc"] == 0 and anchor and anchor["rc"] == 0:
                ok_wall = r["wall"] <= 0.8 * anchor["wall"]
                ok_mem = r["peak_proc"] <= anchor["peak_proc"]
                size_ratio = r["size"] / anchor["size"]
                print(f"       target ({runner}) wall <= 0.8 x (a): "
                      f"{'PASS' if ok_wall else 'FAIL'}; "
                      f"largest-process peak <= (a)'s: {'PASS' if ok_mem else 'FAIL'}; "
                      f"output size {size_ratio:.3f}x (a)'s (<= 1.05: "
                      f"{'PASS' if size_ratio <= 1.05 else 'FAIL'})")  # fmt: skip
        stages: dict[str, dict[str, Any]] = {}
        for runner in ("e", "f"):
            if args.no_stages or results.get(runner, {}).get("rc") != 0:
                continue
            dst = workdir / f"out-{size}-{runner}-stages.tif"
            cmd = [sys.executable, __file__, "--stages", runner, str(src), str(dst),
                   str(args.threads)]  # fmt: skip
            # compression in the writing thread, where the encode timer sees it (by default the
            # lock holder hands it to GDAL's threads: same CPU, but counted under "other")
            env = {**os.environ, "DASK_PIPELINE__WRITE__COMPRESS_THREADS": "1"}
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
            dst.unlink(missing_ok=True)
            if proc.returncode:
                print(f"       stage run ({runner}) FAILED: {proc.stderr[-400:]}")
                continue
            stages[runner] = json.loads(proc.stdout.strip().splitlines()[-1])
        if stages:
            print_stages(results, stages, args.threads)
    if len(peaks_e) >= 2:
        small, large = min(peaks_e), max(peaks_e)
        growth = peaks_e[large] / peaks_e[small] - 1
        print(f"(e) largest-process peak memory {small} -> {large}: {growth:+.1%} "
              f"({'PASS' if growth < 0.10 else 'FAIL'}: target < +10%)")  # fmt: skip


if __name__ == "__main__":
    main()
