"""Batch throughput: the seed guide's ProcessPoolExecutor script vs ``pipeline batch``.

Measured in one run, on the same generated tiles, with the same number of workers and the same
output creation options (tiled 512, deflate, predictor 2):

(a) anchor: a spawn ``ProcessPoolExecutor``, one stateless task per tile that opens the tile,
    reprojects it band by band with ``rasterio.warp.reproject`` (bilinear, EPSG:3857), writes a
    ``.tmp`` file and renames it, logging with ``as_completed`` (the seed guide's script);
(b) ``pipeline batch IN -o OUT --dst-crs EPSG:3857 --resampling bilinear`` with its defaults (a
    LocalCluster of N single-threaded worker processes, GDAL's approximate transformer with its
    0.125-pixel error threshold, as the anchor's ``rasterio.warp.reproject``, verification of
    every output before it is published, the resume manifest);
(c) with ``--exact`` only: (b) with ``error_threshold=0``, the exact transformer (slower).

Each is timed as a whole process, start-up included, as a user runs it (the in-run time each
reports is printed beside it), on the first 256 and on all 1,024 tiles (``--tiles``). Target
(issue 15): (b) >= 1.3x the anchor's tiles/s on 1,024 tiles; the ratio on 256 tiles is printed
too. Also printed: the total output size of (b) against the anchor's (target <= 1.05x) and
whether (b)'s outputs are pixel-identical to the anchor's (same grid and values, tile by tile).

``--tiny N``: N tiny tiles through ``run_batch`` on a process LocalCluster; prints the client's
peak RSS and the per-tile scheduling overhead, i.e. wall time minus task time divided over the
worker threads, per tile (target < 2 ms).

    uv run python benchmarks/bench_batch.py [--tiles 256 1024] [--size 512] [--workers 2]
        [--tiny N] [--workdir DIR] [--exact]
    uv run python benchmarks/bench_batch.py --scale [40000] [--workdir DIR]

``--scale`` runs only the seed's scale instead: 40,000 tiles of 256x256x3 in one ``pipeline
batch`` run with a worker SIGKILLed half-way, then the rerun (see ``batch_scale.py``).

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
    inp: str, out: str, workers: int, processes: bool, error_threshold: float = 0.125
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


def _whole_process(kind: str, inp: str, out: str, workers: int, et: float) -> tuple[float, str]:
    """Wall seconds of one whole process, as a user runs it, and what it said of its run.

    The anchor is the seed script as its own process; the pipeline is ``pipeline batch`` with
    its defaults (a LocalCluster of ``workers`` single-threaded worker processes)."""
    if kind == "anchor":
        cmd = [sys.executable, __file__, "--run", "anchor", inp, out, str(workers)]
    else:
        exe = os.path.join(os.path.dirname(sys.executable), "pipeline")
        cmd = [exe, "batch", inp, "-o", out, "--dst-crs", DST, "--resampling", "bilinear",
               "--et", repr(et), "--workers", str(workers), "--no-progress",
               "--dashboard-address", "127.0.0.1:0"]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    if kind == "anchor":
        inner = f"pool {json.loads(proc.stdout.strip().splitlines()[-1])['seconds']:.2f} s"
    else:
        line = [ln for ln in proc.stdout.splitlines() if " tiles: " in ln][-1]
        inner = "run " + line.split(" in ")[-1]
    return seconds, inner


def compare_outputs(anchor: str, ours: str) -> dict[str, Any]:
    """Total sizes of two output folders and how many same-named tiles are pixel-identical."""
    import numpy as np
    import rasterio

    names = sorted(os.listdir(anchor))
    sizes = [
        sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d)) for d in (anchor, ours)
    ]
    identical = differing_pixels = missing = 0
    for name in names:
        path = os.path.join(ours, name)
        if not os.path.exists(path):
            missing += 1
            continue
        with rasterio.open(os.path.join(anchor, name)) as a, rasterio.open(path) as b:
            same_grid = a.shape == b.shape and a.transform == b.transform and a.crs == b.crs
            if same_grid:
                diff = int(np.count_nonzero(a.read() != b.read()))
                differing_pixels += diff
                identical += diff == 0
    return {
        "size_ratio": sizes[1] / sizes[0],
        "identical": identical,
        "tiles": len(names),
        "missing": missing,
        "differing": differing_pixels,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tiny", type=int, default=0, help="N tiny tiles (16x16x1), e.g. 20000")
    ap.add_argument("--workdir")
    ap.add_argument(
        "--exact", action="store_true", help="also run pipeline with --et 0 (exact transformer)"
    )
    ap.add_argument(
        "--scale", type=int, nargs="?", const=40000, metavar="N",
        help="only the seed's scale: N tiles (default 40,000) of 256x256x3, see batch_scale.py",
    )  # fmt: skip
    ap.add_argument("--run", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.scale:
        from batch_scale import run_scale

        run_scale(a.workdir or tempfile.mkdtemp(prefix="bench-scale-"), a.scale, 256, 1024)
        return
    if a.run:
        kind, *rest = a.run
        if kind == "anchor":
            res = run_anchor(rest[0], rest[1], int(rest[2]))
        else:
            et = float(rest[3]) if len(rest) > 3 else 0.125
            res = run_pipeline(rest[0], rest[1], int(rest[2]), kind == "pipeline-processes", et)
        print(json.dumps(res))
        return
    work = a.workdir or tempfile.mkdtemp(prefix="bench-batch-")
    most = max(a.tiles)
    every = os.path.join(work, f"tiles-{a.size}")
    if len(os.listdir(every) if os.path.isdir(every) else []) < most:
        _make_tiles(every, most, a.size, 3)
    runs = [("anchor", "anchor", 0.125), ("pipeline", "pipeline", 0.125)]
    if a.exact:
        runs.append(("pipeline --et 0", "pipeline", 0.0))
    ratios: dict[int, float] = {}
    for n in sorted(a.tiles):
        inp = os.path.join(work, f"tiles-{a.size}-{n}")
        if not os.path.isdir(inp):  # the first n tiles, hard-linked
            os.makedirs(inp)
            for name in sorted(os.listdir(every))[:n]:
                os.link(os.path.join(every, name), os.path.join(inp, name))
        print(
            f"{n} tiles of {a.size}x{a.size}x3 uint8 -> {DST} bilinear, "
            f"{a.workers} workers, outputs tiled 512 deflate predictor 2"
        )
        rates, outs = {}, {}
        for label, kind, et in runs:
            out = outs[label] = os.path.join(work, f"out-{n}-{label.replace(' ', '')}")
            shutil.rmtree(out, ignore_errors=True)
            seconds, inner = _whole_process(kind, inp, out, a.workers, et)
            rates[label] = n / seconds
            print(
                f"  {label:22s} {seconds:7.2f} s  {rates[label]:6.1f} tiles/s  "
                f"(whole process; {inner})"
            )
        for label, _, _ in runs[1:]:
            ratio = rates[label] / rates["anchor"]
            if label == "pipeline":
                ratios[n] = ratio
            cmp = compare_outputs(outs["anchor"], outs[label])
            print(
                f"  {label}/anchor: {ratio:.2f}x tiles/s; output size {cmp['size_ratio']:.3f}x "
                f"(<= 1.05: {'PASS' if cmp['size_ratio'] <= 1.05 else 'FAIL'}); "
                f"pixel-identical tiles {cmp['identical']}/{cmp['tiles']} "
                f"({cmp['differing']} differing values, {cmp['missing']} missing)"
            )
    if ratios:
        n = max(ratios)
        others = ", ".join(f"{k} tiles {v:.2f}x" for k, v in ratios.items() if k != n)
        print(
            f"target: pipeline/anchor tiles/s on {n} tiles {ratios[n]:.2f}x (>= 1.3: "
            f"{'PASS' if ratios[n] >= 1.3 else 'FAIL'}" + (f"; {others})" if others else ")")
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
