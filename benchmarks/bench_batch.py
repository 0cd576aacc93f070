"""Batch throughput: the seed guide's ProcessPoolExecutor script vs ``pipeline batch``.

Measured in one run, on the same generated tiles, with the same number of workers and the same
output creation options (tiled 512, deflate, predictor 2):

(a) anchor: a spawn ``ProcessPoolExecutor``, one stateless task per tile that opens the tile,
    reprojects it band by band with ``rasterio.warp.reproject`` (bilinear, EPSG:3857), writes a
    ``.tmp`` file and renames it, logging with ``as_completed`` (the seed guide's script);
(b) ``pipeline.run_batch`` on a LocalCluster of 1 worker x N threads (its defaults: exact
    transformer, global kernel scale, verification of every output before it is published);
(c) with ``--error-threshold ET`` > 0 only: (b) again with ``error_threshold=ET`` (gdalwarp's
    ``-et``; 0.125 is GDAL's default, as the anchor uses), printed next to (a) and (b).

Then the scale run: 20,000 tiny tiles through ``run_batch`` on a process LocalCluster; prints
the client's peak RSS (target < 1 GB) and the per-tile scheduling overhead, i.e. wall time
minus task time divided over the worker threads, per tile (target < 2 ms).

    uv run python benchmarks/bench_batch.py [--tiles 256] [--size 512] [--workers 2]
        [--tiny 20000] [--workdir DIR] [--error-threshold 0.125]

Each approach runs in its own subprocess so peak memory and imports are its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

DST = "EPSG:3857"
CREATION = {
    "tiled": True,
    "blockxsize": 512,
    "blockysize": 512,
    "compress": "deflate",
    "predictor": 2,
}


def _make_tiles(folder: str, n: int, size: int, bands: int) -> None:
    from pipeline.testing import write_synthetic_raster

    os.makedirs(folder, exist_ok=True)
    per_row = 64
    for i in range(n):
        write_synthetic_raster(
            os.path.join(folder, f"tile_{i:05d}.tif"),
            bands=bands,
            height=size,
            width=size,
            block=None if size < 256 else 256,
            seed=i % 17,
            origin=(
                300000.0 + (i % per_row) * size * 30.0,
                5000000.0 - (i // per_row) * size * 30.0,
            ),
        )


def _seed_worker(src_path: str, dst_path: str) -> str:
    """The seed guide's stateless per-tile worker."""
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(src_path) as src:
        transform, width, height = calculate_default_transform(
            src.crs, DST, src.width, src.height, *src.bounds
        )
        profile = src.profile.copy()
        profile.update(crs=DST, transform=transform, width=width, height=height, **CREATION)
        tmp = dst_path + ".tmp"
        with rasterio.open(tmp, "w", **profile) as dst:
            for b in range(1, src.count + 1):
                reproject(
                    source=rasterio.band(src, b),
                    destination=rasterio.band(dst, b),
                    src_transform=src.transform,
                    src_crs=src.crs,
                    dst_transform=transform,
                    dst_crs=DST,
                    resampling=Resampling.bilinear,
                )
    os.replace(tmp, dst_path)
    return dst_path


def run_anchor(inp: str, out: str, workers: int) -> dict[str, Any]:
    """(a) spawn ProcessPoolExecutor over every tile."""
    import concurrent.futures as cf
    import logging
    import multiprocessing as mp

    os.makedirs(out, exist_ok=True)
    files = sorted(os.listdir(inp))
    start = time.perf_counter()
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
        futs = {
            ex.submit(
                _seed_worker,
                os.path.join(inp, f),
                os.path.join(out, f.replace(".tif", "_3857.tif")),
            ): f
            for f in files
        }
        for fut in cf.as_completed(futs):
            logging.getLogger("seed").info("done %s", fut.result())
    return {"seconds": time.perf_counter() - start, "tiles": len(files)}


def run_pipeline(
    inp: str, out: str, workers: int, processes: bool, error_threshold: float = 0.0
) -> dict[str, Any]:
    """(b)/(c) pipeline.run_batch on a LocalCluster (threads unless ``processes``)."""
    import resource

    import pipeline
    from pipeline.batch import run_batch

    kw: dict[str, Any] = (
        {"processes": True, "n_workers": workers, "threads_per_worker": 1}
        if processes
        else {"n_workers": 1, "threads_per_worker": workers}
    )
    with pipeline.connect(dashboard_address="127.0.0.1:0", quiet=True, **kw) as client:
        client.submit(lambda: 0).result()
        start = time.perf_counter()
        summary = run_batch(
            inp, out, DST, resampling="bilinear", client=client, error_threshold=error_threshold
        )
        wall = time.perf_counter() - start
    busy = sum(r.seconds for r in summary.records)
    return {
        "seconds": wall,
        "tiles": len(summary.records),
        "failed": summary.failed,
        "overhead_ms": 1000 * (wall - busy / workers) / max(1, len(summary.records)),
        "client_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _subprocess(kind: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--run", kind, *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=256)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tiny", type=int, default=20000, help="0 skips the scale run")
    ap.add_argument("--workdir")
    ap.add_argument(
        "--error-threshold",
        type=float,
        default=0.0,
        help="also run pipeline with this error_threshold (gdalwarp -et; 0: exact run only)",
    )
    ap.add_argument("--run", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run:
        kind, *rest = a.run
        if kind == "anchor":
            res = run_anchor(rest[0], rest[1], int(rest[2]))
        else:
            et = float(rest[3]) if len(rest) > 3 else 0.0
            res = run_pipeline(rest[0], rest[1], int(rest[2]), kind == "pipeline-processes", et)
        print(json.dumps(res))
        return
    work = a.workdir or tempfile.mkdtemp(prefix="bench-batch-")
    inp = os.path.join(work, "tiles")
    if not os.path.isdir(inp):
        _make_tiles(inp, a.tiles, a.size, 3)
    print(
        f"{a.tiles} tiles of {a.size}x{a.size}x3 uint8 -> {DST} bilinear, "
        f"{a.workers} workers, outputs tiled 512 deflate predictor 2"
    )
    runs = [("anchor", "anchor", 0.0), ("pipeline", "pipeline", 0.0)]
    if a.error_threshold > 0:
        runs.append((f"pipeline --et {a.error_threshold:g}", "pipeline", a.error_threshold))
    rates = {}
    for label, kind, et in runs:
        out = os.path.join(work, f"out-{label.replace(' ', '').replace('--', '-')}")
        shutil.rmtree(out, ignore_errors=True)
        res = _subprocess(kind, inp, out, str(a.workers), repr(et))
        rates[label] = res["tiles"] / res["seconds"]
        print(f"  {label:22s} {res['seconds']:7.2f} s  {rates[label]:6.1f} tiles/s")
    for label, _, _ in runs[1:]:
        ratio = rates[label] / rates["anchor"]
        print(
            f"  ratio {label}/anchor tiles/s: {ratio:.2f}x (target >= 1.5x: "
            f"{'PASS' if ratio >= 1.5 else 'FAIL'})"
        )
    if a.tiny:
        tiny = os.path.join(work, f"tiny-{a.tiny}")
        if not os.path.isdir(tiny):
            _make_tiles(tiny, a.tiny, 16, 1)
        out = os.path.join(work, "out-tiny")
        shutil.rmtree(out, ignore_errors=True)
        res = _subprocess("pipeline-processes", tiny, out, str(a.workers))
        print(
            f"{a.tiny} tiny tiles (16x16x1): {res['seconds']:.1f} s, "
            f"{1000 * res['seconds'] / res['tiles']:.2f} ms/tile wall, failed {res['failed']}"
        )
        print(
            f"  client peak RSS {res['client_peak_rss_mb']:.0f} MB (target < 1024: "
            f"{'PASS' if res['client_peak_rss_mb'] < 1024 else 'FAIL'})"
        )
        print(
            f"  per-tile scheduling overhead {res['overhead_ms']:.2f} ms (target < 2: "
            f"{'PASS' if res['overhead_ms'] < 2 else 'FAIL'})"
        )


if __name__ == "__main__":
    main()
