"""The same jobs on a LocalCluster and on a cluster across hosts (network namespaces, TLS).

Jobs (inputs as ``bench_reproject.py`` and ``bench_batch.py`` generate them):

* reproject: ``--size`` x ``--size`` x 3 uint8 UTM 18N -> EPSG:3857, bilinear, written as a
  tiled deflate GeoTIFF (``pipeline.reproject`` + ``pipeline.write_raster``);
* batch: ``--tiles`` tiles of ``--tile-size`` pixels x 3 bands -> EPSG:3857, bilinear
  (``pipeline.run_batch``, its defaults: verification of every output).

Clusters, both 2 workers x 1 thread:

(a) a LocalCluster of two worker processes on this machine (tcp on 127.0.0.1);
(b) `tests.netns_cluster.NetCluster`: scheduler, two workers and the client each in a network
    namespace of its own, joined by a bridge, TLS with temporary certificates, the shared folder
    on the common filesystem. Needs root and iproute2.

Printed per job and cluster: wall time of the job (client side, cluster already up), tasks, the
summed task compute time, and the scheduling overhead per task: (wall x threads - compute)
/ tasks, i.e. the thread time not spent computing, spread over the tasks. Also the machine's
busy fraction in the 3 s before the runs, from ``/proc/stat``: above 10% the figures are
contended.

    uv run python benchmarks/bench_cluster.py                 # 2048^2 and 128 tiles of 256^2
    uv run python benchmarks/bench_cluster.py --full          # 8192^2 and 1,024 tiles of 512^2

Each run is a subprocess of this script (``--run``), started in the client namespace for (b).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(1, str(pathlib.Path(__file__).resolve().parents[1]))

from stages import machine_busy_seconds


def run_job(job: str, scheduler: str, src: str, dst: str) -> dict[str, Any]:
    """One job on ``scheduler`` (``"local"`` or an address); timings from the task stream."""
    from distributed import get_task_stream

    import pipeline

    if scheduler == "local":
        client = pipeline.connect(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address="127.0.0.1:0", quiet=True)  # fmt: skip
    else:
        client = pipeline.connect(scheduler, quiet=True)
    with client:
        client.wait_for_workers(2, timeout=120)
        threads = sum(client.nthreads().values())
        start = time.perf_counter()
        with get_task_stream(client) as ts:
            if job == "reproject":
                da = pipeline.reproject(
                    pipeline.open_raster(src), "EPSG:3857", resampling="bilinear"
                )
                pipeline.write_raster(da, dst, overwrite=True)
            else:
                summary = pipeline.run_batch(
                    src, dst, "EPSG:3857", resampling="bilinear", overwrite=True
                )
                if summary.failed:
                    raise RuntimeError(summary.line())
        wall = time.perf_counter() - start
    busy = sum(
        s["stop"] - s["start"]
        for rec in ts.data
        for s in rec.get("startstops", ())
        if s["action"] == "compute"
    )
    tasks = max(1, len(ts.data))
    return {
        "wall": wall,
        "tasks": len(ts.data),
        "compute": busy,
        "threads": threads,
        "overhead_ms": (wall * threads - busy) / tasks * 1000,
    }


def _inputs(work: pathlib.Path, size: int, tiles: int, tile_size: int) -> dict[str, str]:
    from bench_batch import _make_tiles
    from bench_reproject import make_input

    src = work / f"in_{size}.tif"
    if not src.exists():
        make_input(src, size)
    folder = work / f"tiles_{tiles}x{tile_size}"
    if not folder.exists():
        _make_tiles(str(folder), tiles, tile_size, 3)
    return {"reproject": str(src), "batch": str(folder)}


def _parse(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--tiles", type=int, default=128)
    ap.add_argument("--tile-size", type=int, default=256)
    ap.add_argument("--full", action="store_true", help="8192^2 and 1,024 tiles of 512^2")
    ap.add_argument("--workdir")
    ap.add_argument("--run", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        print(json.dumps(run_job(*args.run)))
        return
    if args.full:
        args.size, args.tiles, args.tile_size = 8192, 1024, 512

    from tests.netns import unavailable_reason
    from tests.netns_cluster import NetCluster

    reason = unavailable_reason()
    if reason:
        sys.exit(f"bench_cluster: the namespace cluster needs {reason!r}")
    work = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="bench-cluster-"))
    work.mkdir(parents=True, exist_ok=True)
    inputs = _inputs(work, args.size, args.tiles, args.tile_size)
    before = machine_busy_seconds()
    time.sleep(3)
    after = machine_busy_seconds()
    cores = os.cpu_count() or 1
    quiet = None if before is None or after is None else (after - before) / (3 * cores)
    me = [sys.executable, str(pathlib.Path(__file__).resolve()), "--run"]
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for job in ("reproject", "batch"):
        dst = str(work / f"local-{job}" if job == "batch" else work / "local.tif")
        run = subprocess.run(
            [*me, job, "local", inputs[job], dst], capture_output=True, text=True, timeout=3600
        )
        results[(job, "a")] = _parse(run)
    # distributed's default timeouts here, not the tests' short ones
    with NetCluster(work / "net", memory_limit="4GiB", env={}) as net:
        for job in ("reproject", "batch"):
            dst = str(work / f"net-{job}" if job == "batch" else work / "net.tif")
            run = net.python([*me[1:], job, net.address, inputs[job], dst], timeout=3600)
            results[(job, "b")] = _parse(run)
    if quiet is not None:
        note = " (contended: the figures are not clean)" if quiet > 0.10 else " (quiet)"
        print(f"machine busy in the 3 s before the runs: {100 * quiet:.0f}% of {cores} cores{note}")
    print(f"reproject {args.size}x{args.size}x3; batch {args.tiles} tiles of "
          f"{args.tile_size}x{args.tile_size}x3; 2 workers x 1 thread")  # fmt: skip
    print("| job | cluster | wall s | tasks | compute s | overhead ms/task | ratio b/a |")
    print("|---|---|---|---|---|---|---|")
    for job in ("reproject", "batch"):
        for c, name in (("a", "LocalCluster"), ("b", "namespaces, TLS")):
            r = results[(job, c)]
            ratio = r["wall"] / results[(job, "a")]["wall"]
            print(f"| {job} | {name} | {r['wall']:.2f} | {r['tasks']} | {r['compute']:.2f} | "
                  f"{r['overhead_ms']:.1f} | {ratio:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
