"""Benchmark: ``pipeline reproject`` against GDAL's and the Python ecosystem's reprojections.

One run generates a deterministic ``--size`` x ``--size`` x 3 uint8 GeoTIFF in UTM 18N (512-pixel
tiles, deflate) and reprojects it to EPSG:3857 with bilinear resampling into a tiled, deflate
GeoTIFF, each runner in its own subprocess:

(a) ``rio warp --threads N`` (GDAL's streaming, multithreaded warper): the anchor;
(b) ``rasterio.warp.reproject(..., num_threads=N)`` on the whole array, then a write;
(c) rioxarray: ``open_rasterio`` -> ``.rio.reproject`` -> ``.rio.to_raster``;
(d) odc-geo ``xr_reproject`` on dask -- skipped when odc-geo is not installed (it is not a
    dependency of this project);
(e) ``pipeline reproject`` with its defaults (LocalCluster of 1 worker x N threads): exact;
(f) ``pipeline reproject --et 0.125``: GDAL's default approximate transformer, as (a)-(c) use
    (opt-in; output then depends on the chunking, see ``pipeline.reproject``).

For each: wall time (process start to exit, imports included), peak memory summed over the
process and its children (sampled every 20 ms with psutil), and ratios against (a). Targets:
(e) wall <= 0.8 x (a), (e) peak memory <= (a)'s (both printed for (f) too), and (e)'s peak
memory growing by less than 10% when the input grows 4x (pass two sizes, e.g.
``--sizes 8192 16384``).

Usage::

    uv run python benchmarks/bench_reproject.py                       # 8192, all runners
    uv run python benchmarks/bench_reproject.py --sizes 8192 16384 --runners a e
    uv run python benchmarks/bench_reproject.py --runners a e f      # exact and --et 0.125
"""

from __future__ import annotations

import argparse
import os
import pathlib
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
    "e": "pipeline reproject (defaults)",
    "f": "pipeline reproject --et 0.125",
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
        et = ", '--et', '0.125'" if runner == "f" else ""
        return [
            *py,
            f"""
from pipeline.cli.reproject import reproject
reproject.main([{str(src)!r}, {str(dst)!r}, '--dst-crs', 'EPSG:3857', '--resampling',
                'bilinear', '--threads', '{threads}', '--dashboard-address', '127.0.0.1:0',
                '--no-progress', '--overwrite'{et}], standalone_mode=True)
""",
        ]
    raise ValueError(runner)


def measure(cmd: list[str]) -> dict[str, Any]:
    """Wall time and peak memory (summed over the process tree) of one subprocess."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - start
    out, err = proc.communicate()
    return {"wall": wall, "peak": peak, "rc": proc.returncode, "err": (err or out)[-400:]}


def print_ratios(results: dict[str, dict[str, Any]], *, indent: int) -> None:
    """Wall time and peak memory of every successful runner against anchor (a)'s."""
    anchor = results["a"]
    for runner, r in results.items():
        if runner != "a" and r["rc"] == 0:
            print(f"{' ' * indent}({runner}) / (a): wall {r['wall'] / anchor['wall']:.2f}x, "
                  f"peak memory {r['peak'] / anchor['peak']:.2f}x")  # fmt: skip


def available(runner: str) -> bool:
    """odc-geo is optional."""
    if runner != "d":
        return True
    try:
        import odc.geo  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8192])
    parser.add_argument("--threads", type=int, default=psutil.cpu_count() or 1)
    parser.add_argument("--runners", nargs="+", default=list(RUNNERS), choices=list(RUNNERS))
    parser.add_argument("--workdir", type=pathlib.Path)
    args = parser.parse_args()
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
            os.environ.get("KEEP_OUTPUTS") or dst.unlink(missing_ok=True)
            status = "ok" if r["rc"] == 0 else f"FAILED rc={r['rc']}: {r['err']}"
            print(f"{size:6d} ({runner}) {RUNNERS[runner]:40s} {r['wall']:7.1f} s "
                  f"{r['peak'] / 2**20:8.0f} MiB  {status}")  # fmt: skip
        anchor = results.get("a")
        if anchor and anchor["rc"] == 0:
            print_ratios(results, indent=7)
        if "e" in results and results["e"]["rc"] == 0:
            peaks_e[size] = results["e"]["peak"]
        for runner in ("e", "f"):
            if runner in results and results[runner]["rc"] == 0 and anchor and anchor["rc"] == 0:
                ok_wall = results[runner]["wall"] <= 0.8 * anchor["wall"]
                ok_mem = results[runner]["peak"] <= anchor["peak"]
                print(f"       target ({runner}) wall <= 0.8 x (a): "
                      f"{'PASS' if ok_wall else 'FAIL'}; "
                      f"({runner}) peak <= (a) peak: {'PASS' if ok_mem else 'FAIL'}")  # fmt: skip
    if len(peaks_e) >= 2:
        small, large = min(peaks_e), max(peaks_e)
        growth = peaks_e[large] / peaks_e[small] - 1
        print(f"(e) peak memory {small} -> {large}: {growth:+.1%} "
              f"({'PASS' if growth < 0.10 else 'FAIL'}: target < +10%)")  # fmt: skip


if __name__ == "__main__":
    main()
