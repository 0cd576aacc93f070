"""Batch resume: the cost of a rerun over outputs that a previous run published.

Publishes N tiles (512x512x3 uint8, deflate) with ``pipeline.run_batch``, then times reruns
that find every output done, on the same LocalCluster (1 worker x ``--threads`` threads):

- ``decode``: every output decoded block by block (`verify_raster`), what every rerun paid
  before the manifest (``pipeline batch --reverify`` now);
- ``checksum``: the manifest record plus a blake2b of each file's bytes (``--verify-existing``);
- ``manifest``: the manifest record against one ``stat`` per output (the default).

    uv run python benchmarks/bench_resume.py [--tiles 200] [--size 512] [--threads 2]
        [--repeat 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir")
    args = parser.parse_args()

    import pipeline
    from pipeline.testing import write_synthetic_raster

    work = args.workdir or tempfile.mkdtemp(prefix="bench-resume-")
    src, out = os.path.join(work, "in"), os.path.join(work, "out")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(src, exist_ok=True)
    for i in range(args.tiles):
        write_synthetic_raster(
            os.path.join(src, f"tile_{i:05d}.tif"),
            height=args.size,
            width=args.size,
            block=256,
            seed=i % 17,
            origin=(300000.0 + (i % 16) * args.size * 30.0, 5e6 - (i // 16) * args.size * 30.0),
        )
    with pipeline.connect(
        n_workers=1, threads_per_worker=args.threads, dashboard_address=":0", quiet=True
    ) as client:
        first = pipeline.run_batch(src, out, "EPSG:3857", resampling="bilinear", client=client)
        size = sum(e.stat().st_size for e in os.scandir(out) if e.name.endswith(".tif"))
        print(f"published: {first.line()}; mean output {size / args.tiles / 1e3:.0f} KB")
        for trust in ("decode", "checksum", "manifest"):
            best = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                rerun = pipeline.run_batch(
                    src, out, "EPSG:3857", resampling="bilinear", client=client, trust=trust
                )
                best = min(best, time.perf_counter() - start)
                assert rerun.skipped == args.tiles, rerun.line()
            print(
                f"rerun {trust:>8}: {best:.3f} s for {args.tiles} tiles, "
                f"{best / args.tiles * 1e3:.2f} ms per tile (best of {args.repeat})"
            )
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
