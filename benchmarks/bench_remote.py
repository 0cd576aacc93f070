"""Benchmark: reprojecting a COG over HTTP, requests and bytes against what the job needs.

Generates (once, cached in ``--cache``, default ``/tmp/pipeline-bench-remote``) an
``--size`` x ``--size`` x 3 uint8 COG (deflate, 512-pixel blocks, overviews) from the raster
of ``bench_reproject.py``, serves it with the counting range server of the tests
(``tests/servers.py``) on 127.0.0.1, and runs two jobs, each in its own process:

(a) a window of 1/16 of the area (the middle quarter of the width and of the height)
    reprojected to EPSG:3857 at the default resolution, nearest;
(b) the whole image reprojected to EPSG:3857 at 8 times the default pixel size, average
    (overview-aware in the pipeline, as ``gdalwarp -ovr AUTO``);

each for ``pipeline reproject URL`` (the CLI, whole process) and for rioxarray's
``open_rasterio(url, chunks=...)`` (``.rio.clip_box`` to the window for (a)) then
``.rio.reproject`` onto the same grid and ``.rio.to_raster``. Both processes get the same GDAL
settings (``pipeline.gdal-env``). Printed: requests, bytes fetched, wall time, and the ratios
against the targets: bytes fetched <= 1.2 x (compressed size of the blocks the job needs, of
the overview level the pipeline reads, plus the file's header), and requests <= 1 x
rioxarray's.

Usage::

    uv run python benchmarks/bench_remote.py              # 8192 x 8192 x 3
    uv run python benchmarks/bench_remote.py --size 2048  # quick check
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.warp import calculate_default_transform, transform, transform_bounds
from rasterio.windows import Window

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_reproject import make_input  # noqa: E402

from pipeline.io.gdal_env import worker_env  # noqa: E402
from tests.servers import RangeServer, serving  # noqa: E402

DST_CRS = "EPSG:3857"
SHRINK = 8
RIOXARRAY_CHUNKS = 2048  # rioxarray chunks: a multiple of the 512 blocks, 12 MiB each


def make_cog(cache: pathlib.Path, size: int) -> pathlib.Path:
    """The benchmark COG, generated once per size (deflate, 512 blocks, overviews)."""
    cog = cache / f"remote_{size}.tif"
    if cog.exists():
        return cog
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        src = pathlib.Path(tmp) / "src.tif"
        make_input(src, size)
        part = pathlib.Path(tmp) / cog.name
        rasterio.shutil.copy(
            str(src), str(part), driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=512,
            OVERVIEW_RESAMPLING="AVERAGE", NUM_THREADS="2",
        )  # fmt: skip
        shutil.move(str(part), cog)
    return cog


def jobs(cog: pathlib.Path) -> dict[str, dict[str, object]]:
    """Destination grid (transform, width, height), resampling and source window per job."""
    with rasterio.open(cog) as ds:
        crs, width, height, bounds = ds.crs, ds.width, ds.height, ds.bounds
        full_t, _, _ = calculate_default_transform(crs, DST_CRS, width, height, *bounds)
        res = full_t.a
        win = Window(width * 3 // 8, height * 3 // 8, width // 4, height // 4)
        wb = rasterio.windows.bounds(win, ds.transform)
    left, bottom, right, top = transform_bounds(crs, DST_CRS, *wb, densify_pts=21)
    out = {}
    w, h = math.ceil((right - left) / res), math.ceil((top - bottom) / res)
    # rioxarray reads what it clips to: the destination grid's footprint in the source CRS
    dst_bounds = (left, top - h * res, left + w * res, top)
    clip = transform_bounds(DST_CRS, crs, *dst_bounds, densify_pts=21)
    out["a"] = {"transform": Affine(res, 0, left, 0, -res, top), "width": w, "height": h,
                "resampling": "nearest", "clip": clip}  # fmt: skip
    left, bottom, right, top = transform_bounds(crs, DST_CRS, *bounds, densify_pts=21)
    r8 = res * SHRINK
    w, h = math.ceil((right - left) / r8), math.ceil((top - bottom) / r8)
    out["b"] = {"transform": Affine(r8, 0, left, 0, -r8, top), "width": w, "height": h,
                "resampling": "average", "clip": None}  # fmt: skip
    return out


def overview_level(cog: pathlib.Path, job: dict[str, object]) -> int | None:
    """The overview level the pipeline reads for ``job`` (its own selection function)."""
    import pipeline
    from pipeline.io.files import overview_shapes
    from pipeline.warp.overviews import overview_level_for
    from pipeline.warp.reproject import warp_spec

    t: Affine = job["transform"]  # type: ignore[assignment]
    w, h = int(job["width"]), int(job["height"])  # type: ignore[call-overload]
    da = pipeline.open_raster(cog)
    spec = warp_spec(da, DST_CRS, resolution=t.a, bounds=(t.c, t.f - h * t.a, t.c + w * t.a,
                     t.f), resampling=job["resampling"])  # fmt: skip
    return overview_level_for(spec, da.sizes["x"], [sw for _, sw in overview_shapes(cog)])


def needed_bytes(cog: pathlib.Path, job: dict[str, object], level: int | None) -> dict[str, int]:
    """Compressed bytes of the blocks (of ``level``) under the job's source footprint, padded
    by one pixel, and the header (everything before the first block of any level)."""
    t: Affine = job["transform"]  # type: ignore[assignment]
    w, h = int(job["width"]), int(job["height"])  # type: ignore[call-overload]
    n = 64  # points per edge of the destination grid, and a grid inside it
    xs = [t.c + t.a * w * i / n for i in range(n + 1)]
    ys = [t.f + t.e * h * j / n for j in range(n + 1)]
    px = [x for x in xs for _ in ys]
    py = [y for _ in xs for y in ys]
    kwargs = {} if level is None else {"overview_level": level}
    with rasterio.open(cog, **kwargs) as ds:
        sx, sy = transform(DST_CRS, ds.crs, px, py)
        cols, rows = zip(*(~ds.transform * (x, y) for x, y in zip(sx, sy, strict=True)),
                         strict=True)  # fmt: skip
        c0, c1 = max(0, int(min(cols)) - 1), min(ds.width, math.ceil(max(cols)) + 1)
        r0, r1 = max(0, int(min(rows)) - 1), min(ds.height, math.ceil(max(rows)) + 1)
        by, bx = ds.block_shapes[0]
        blocks = [(i, j) for i in range(r0 // by, (r1 - 1) // by + 1)
                  for j in range(c0 // bx, (c1 - 1) // bx + 1)]  # fmt: skip
        data = sum(int(ds.get_tag_item(f"BLOCK_SIZE_{j}_{i}", "TIFF", bidx=1)) for i, j in blocks)
    with rasterio.open(cog) as ds:
        levels = [None, *range(len(ds.overviews(1)))]
    first = []
    for lv in levels:
        with rasterio.open(cog, **({} if lv is None else {"overview_level": lv})) as ds:
            first.append(int(ds.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1)))
    return {"blocks": len(blocks), "data": data, "header": min(first)}


def pipeline_command(url: str, out: pathlib.Path, job: dict[str, object]) -> list[str]:
    t: Affine = job["transform"]  # type: ignore[assignment]
    w, h = int(job["width"]), int(job["height"])  # type: ignore[call-overload]
    bounds = [t.c, t.f - h * t.a, t.c + w * t.a, t.f]
    return [sys.executable, "-m", "pipeline", "reproject", url, str(out), "--dst-crs", DST_CRS,
            "--resolution", repr(t.a), "--bounds", *map(repr, bounds), "--resampling",
            str(job["resampling"]), "--no-progress", "--overwrite"]  # fmt: skip


def rioxarray_command(url: str, out: pathlib.Path, job: dict[str, object]) -> list[str]:
    t: Affine = job["transform"]  # type: ignore[assignment]
    clip = job["clip"]
    code = textwrap.dedent(f"""
        import rioxarray
        from affine import Affine
        from rasterio.enums import Resampling
        da = rioxarray.open_rasterio({url!r}, chunks={{"band": -1, "x": {RIOXARRAY_CHUNKS},
                                                      "y": {RIOXARRAY_CHUNKS}}})
        clip = {clip!r}
        if clip is not None:
            da = da.rio.clip_box(*clip)
        out = da.rio.reproject({DST_CRS!r}, transform=Affine(*{tuple(t)[:6]!r}),
                               shape=({job["height"]}, {job["width"]}),
                               resampling=Resampling.{job["resampling"]})
        out.rio.to_raster({str(out)!r}, tiled=True, compress="deflate")
    """)
    return [sys.executable, "-c", code]


def run(name: str, cmd: list[str], server: RangeServer, env: dict[str, str]) -> dict[str, float]:
    server.reset_counts()
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{name} failed:\n{proc.stdout}\n{proc.stderr}")
    with server.lock:
        ranges = [r for _, _, r in server.requests]
        return {"requests": len(server.requests), "bytes": server.bytes_served, "wall": seconds,
                "unique": unique_bytes(ranges), "ranges": ranges}  # fmt: skip


def unique_bytes(headers: list[str | None]) -> int:
    """Bytes of the file covered by the requests' ``Range`` headers, each byte counted once."""
    spans = sorted(
        (int(a), int(b) + 1)
        for h in headers
        if h and h.startswith("bytes=")
        for a, _, b in (part.strip().partition("-") for part in h[6:].split(","))
        if a and b
    )
    total, end = 0, 0
    for a, b in spans:
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--cache", type=pathlib.Path, default=pathlib.Path(
        "/tmp/pipeline-bench-remote"))  # fmt: skip
    parser.add_argument("--jobs", nargs="+", default=["a", "b"], choices=["a", "b"])
    parser.add_argument("--runners", nargs="+", default=["pipeline", "rioxarray"],
                        choices=["pipeline", "rioxarray"])  # fmt: skip
    parser.add_argument("--ranges", action="store_true", help="print every request's range")
    args = parser.parse_args()
    start = time.perf_counter()
    cog = make_cog(args.cache, args.size)
    print(f"COG {cog} ({cog.stat().st_size / 2**20:.1f} MiB; {time.perf_counter() - start:.0f} s"
          " to generate or find)")  # fmt: skip
    env = {**os.environ, **worker_env()}
    out_dir = pathlib.Path(tempfile.mkdtemp(prefix="bench-remote-"))
    served = out_dir / "served"
    served.mkdir()
    os.link(cog, served / cog.name) if cog.stat().st_dev == served.stat().st_dev else (
        shutil.copyfile(cog, served / cog.name))  # fmt: skip
    titles = {"a": "(a) 1/16-area window -> EPSG:3857, nearest",
              "b": f"(b) whole image, {SHRINK}x shrink -> EPSG:3857, average"}  # fmt: skip
    try:
        with serving(served) as server:
            for key, job in jobs(cog).items():
                if key not in args.jobs:
                    continue
                level = overview_level(cog, job)
                need = needed_bytes(cog, job, level)
                which = "full resolution" if level is None else f"overview level {level}"
                print(f"\n{titles[key]}: {job['width']} x {job['height']} output; "
                      f"reads {which}: {need['blocks']} blocks, {need['data']:,} B compressed "
                      f"+ {need['header']:,} B header")  # fmt: skip
                # a fresh token per run: nothing is served from an earlier run's cache
                res = {}
                for runner, make in (("pipeline", pipeline_command),
                                     ("rioxarray", rioxarray_command)):  # fmt: skip
                    if runner not in args.runners:
                        continue
                    server.token = os.urandom(6).hex()
                    cmd = make(server.url(cog.name), out_dir / f"{key}_{runner}.tif", job)
                    res[runner] = r = run(runner, cmd, server, env)
                    print(
                        f"  {runner:9s} {int(r['requests']):6d} requests "
                        f"{r['bytes'] / 2**20:9.2f} MiB fetched ({r['unique'] / 2**20:.2f} MiB "
                        f"distinct) {r['wall']:7.2f} s wall"
                    )
                    if args.ranges:
                        print("   ", r["ranges"])
                target = need["data"] + need["header"]
                for runner, r in res.items():
                    goal = " (target <= 1.2)" if runner == "pipeline" else ""
                    print(
                        f"  {runner} bytes / (needed blocks + header) = "
                        f"{r['bytes'] / target:.3f}{goal}"
                    )
                if len(res) == 2:
                    p, x = res["pipeline"], res["rioxarray"]
                    print(
                        f"  pipeline requests / rioxarray requests = "
                        f"{p['requests'] / x['requests']:.3f} (target <= 1)"
                    )
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
