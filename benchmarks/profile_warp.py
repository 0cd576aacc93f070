"""Where the time of one batch tile (and of one reprojection chunk) goes, stage by stage.

Times the pipeline's real functions, nothing copied: `stages.StageTimer` wraps them in this
process (``pipeline.batch.process_tile``, ``pipeline.warp.tile.warp_tile``, its ``make_spec``,
rasterio read (``_read_all``) and ``warp_window``, the engine's two VRT XML builders,
``pipeline.io.staged.write_staged`` with its ``write``/``verify`` callbacks, ``fsync`` and
``publish``, ``pipeline.batch.verify_written`` and the ``verify_raster`` it calls), then runs
``batch.process_tile`` (-> ``_warp_tile_direct``) in one thread on tiles made like
``bench_batch.py``'s (512x512x3 uint8, UTM 18N -> EPSG:3857, bilinear) and
``pipeline.warp.tile.warp_file_window`` (``read_source_window`` + ``warp_window``) on one
default-size destination chunk of ``bench_reproject.py``'s input (up to three chunks on the
middle diagonal, which share almost no source block, after a warm-up on a corner chunk; each
transformer in a new thread, so with its own dataset handle and a cold block cache). Both run
once per transformer: GDAL's approximate one (``error_threshold=0.125``, the default) and the
exact one (``--et 0``).

Printed: median milliseconds per call (CPU of the working thread, then wall) for each stage;
"rest" rows are the parent minus its timed children. Extras that copy no product code: GDAL's
transformer alone (exact and approximate, through GDAL's C API with ctypes, on the same
destination pixel centres, row by row within the warp's block grid as GDAL's warp kernel
calls it) and PROJ's own cost for the same points (pyproj, one call).

    uv run python benchmarks/profile_warp.py [--tiles 24] [--size 8192] [--chunk 0]
        [--workdir DIR]
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from stages import StageTimer, wrap_write_staged

DST = "EPSG:3857"
THRESHOLDS = (0.125, 0.0)
WRITE = "write callback: create, write, deflate, close"

#: (label, depth, children whose sum the "rest" row subtracts) of the batch tile table.
TILE_ROWS: list[tuple[str, int]] = [
    ("process_tile", 0),
    ("warp_tile", 1),
    ("make_spec", 2),
    ("rasterio read + decode (_read_all)", 2),
    ("warp_window", 2),
    ("source_vrt_xml", 3),
    ("warped_vrt_xml", 3),
    ("warp_window rest: /vsimem copy, GDAL warp", 3),
    ("warp_tile rest: open, metadata, overview check, cast", 2),
    ("write_staged", 1),
    ("write callback: create, write, deflate, close", 2),
    ("fsync", 2),
    ("verify callback", 2),
    ("verify_written", 3),
    ("verify_raster(decode=False)", 4),
    ("publish", 2),
    ("write_staged rest", 2),
    ("process_tile rest: profile, makedirs, record", 1),
]
RESTS = {
    "warp_window rest: /vsimem copy, GDAL warp": (
        "warp_window",
        ["source_vrt_xml", "warped_vrt_xml"],
    ),
    "warp_tile rest: open, metadata, overview check, cast": (
        "warp_tile",
        ["make_spec", "rasterio read + decode (_read_all)", "warp_window"],
    ),
    "write_staged rest": (
        "write_staged",
        ["write callback: create, write, deflate, close", "fsync", "verify callback", "publish"],
    ),
    "process_tile rest: profile, makedirs, record": (
        "process_tile",
        ["warp_tile", "write_staged"],
    ),
    "warp_file_window rest: cast": (
        "warp_file_window",
        ["read_source_window", "warp_window"],
    ),
}
CHUNK_ROWS: list[tuple[str, int]] = [
    ("warp_file_window", 0),
    ("read_source_window", 1),
    ("warp_window", 1),
    ("source_vrt_xml", 2),
    ("warped_vrt_xml", 2),
    ("warp_window rest: /vsimem copy, GDAL warp", 2),
    ("warp_file_window rest: cast", 1),
]


def fill_rests(timer: StageTimer) -> None:
    """The "rest" rows: each call of a parent minus its children's calls (one per parent)."""
    for label, (parent, children) in RESTS.items():
        if parent not in timer.cpu:
            continue
        n = len(timer.cpu[parent])
        kids = [c for c in children if len(timer.cpu.get(c, ())) == n]
        for i in range(n):
            timer.record(
                label,
                timer.wall[parent][i] - sum(timer.wall[c][i] for c in kids),
                timer.cpu[parent][i] - sum(timer.cpu[c][i] for c in kids),
            )


def instrument_warp(timer: StageTimer) -> None:
    """The warp step shared by tiles and chunks."""
    from pipeline.warp import engine, tile

    timer.wrap(tile, "warp_window", "warp_window")
    timer.wrap(engine, "source_vrt_xml", "source_vrt_xml")
    timer.wrap(engine, "warped_vrt_xml", "warped_vrt_xml")


def instrument_tile(timer: StageTimer) -> None:
    """Wrap every stage of `pipeline.batch.process_tile` where its callers look it up."""
    from pipeline import batch, verify
    from pipeline.io import staged
    from pipeline.warp import tile

    timer.wrap(batch, "process_tile", "process_tile")
    timer.wrap(tile, "warp_tile", "warp_tile")
    timer.wrap(tile, "make_spec", "make_spec")
    timer.wrap(tile, "_read_all", "rasterio read + decode (_read_all)")
    instrument_warp(timer)
    wrap_write_staged(
        timer, [staged], write_label=WRITE
    )  # imported by _warp_tile_direct when called
    timer.wrap(staged, "fsync", "fsync")
    timer.wrap(staged, "publish", "publish")
    timer.wrap(batch, "verify_written", "verify_written")
    timer.wrap(verify, "verify_raster", "verify_raster(decode=False)")


def _libgdal() -> ctypes.CDLL:
    """The GDAL rasterio is linked with (its wheel's bundled copy)."""
    import rasterio._base as base

    libs = glob.glob(
        os.path.join(os.path.dirname(base.__file__), "..", "rasterio.libs", "libgdal*")
    )
    lib = ctypes.CDLL(libs[0]) if libs else ctypes.CDLL("libgdal.so")
    vp, dp, ip = ctypes.c_void_p, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_int)
    lib.GDALCreateGenImgProjTransformer3.restype = vp
    lib.GDALCreateGenImgProjTransformer3.argtypes = [ctypes.c_char_p, dp, ctypes.c_char_p, dp]
    lib.GDALGenImgProjTransform.restype = ctypes.c_int
    lib.GDALGenImgProjTransform.argtypes = [vp, ctypes.c_int, ctypes.c_int, dp, dp, dp, ip]
    lib.GDALCreateApproxTransformer.restype = vp
    lib.GDALCreateApproxTransformer.argtypes = [vp, vp, ctypes.c_double]
    lib.GDALApproxTransform.restype = ctypes.c_int
    lib.GDALApproxTransform.argtypes = [vp, ctypes.c_int, ctypes.c_int, dp, dp, dp, ip]
    lib.GDALDestroyTransformer.argtypes = [vp]
    return lib


def block_segments(spec: Any, window: Any) -> tuple[range, list[tuple[int, int]]]:
    """Destination rows and column segments GDAL transforms for ``window``: every block of the
    warp's block grid (``spec.block``) the window touches, one call per row per block."""
    bh, bw = spec.block
    r0 = window.row0 // bh * bh
    r1 = min(spec.dst.height, -(-window.row1 // bh) * bh)
    c0 = window.col0 // bw * bw
    c1 = min(spec.dst.width, -(-window.col1 // bw) * bw)
    return range(r0, r1), [(c, min(c + bw, c1)) for c in range(c0, c1, bw)]


def gdal_transform_ms(spec: Any, window: Any, threshold: float, *, repeat: int = 3) -> float:
    """CPU ms for GDAL's transformer (exact when ``threshold`` is 0, else approximate with that
    ``MaxError``) to map the destination pixel centres GDAL warps for ``window`` (best of
    ``repeat``)."""
    lib = _libgdal()
    gt_t = ctypes.c_double * 6
    src_gt, dst_gt = gt_t(*spec.src.transform.to_gdal()), gt_t(*spec.dst.transform.to_gdal())
    arg = lib.GDALCreateGenImgProjTransformer3(
        spec.src.crs.to_wkt().encode(), src_gt, spec.dst.crs.to_wkt().encode(), dst_gt
    )
    func: Callable[..., int] = lib.GDALGenImgProjTransform
    handle = arg
    if threshold > 0:
        handle = lib.GDALCreateApproxTransformer(
            ctypes.cast(lib.GDALGenImgProjTransform, ctypes.c_void_p), arg, threshold
        )
        func = lib.GDALApproxTransform
    rows, segments = block_segments(spec, window)
    width = max(c1 - c0 for c0, c1 in segments)
    xs, ys = np.empty(width), np.empty(width)
    zs, ok = np.zeros(width), np.zeros(width, dtype=np.intc)
    dp = ctypes.POINTER(ctypes.c_double)
    ptr = (xs.ctypes.data_as(dp), ys.ctypes.data_as(dp), zs.ctypes.data_as(dp))
    okp = ok.ctypes.data_as(ctypes.POINTER(ctypes.c_int))
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        for row in rows:
            for c0, c1 in segments:
                n = c1 - c0
                xs[:n] = np.arange(c0, c1) + 0.5
                ys[:n] = row + 0.5
                func(handle, 1, n, *ptr, okp)
        best = min(best, time.thread_time() - start)
    if threshold > 0:
        lib.GDALDestroyTransformer(handle)
    lib.GDALDestroyTransformer(arg)
    return 1000 * best


def pyproj_transform_ms(spec: Any, window: Any, *, repeat: int = 3) -> tuple[float, str]:
    """PROJ's own cost (pyproj, one call) for the same destination points."""
    from pyproj import Transformer

    t = Transformer.from_crs(spec.dst.crs.to_wkt(), spec.src.crs.to_wkt(), always_xy=True)
    rows, segments = block_segments(spec, window)
    cols, rr = np.meshgrid(
        np.arange(segments[0][0], segments[-1][1]) + 0.5, np.asarray(rows) + 0.5, indexing="xy"
    )
    a = spec.dst.transform
    x0, y0 = a.c + a.a * cols + a.b * rr, a.f + a.d * cols + a.e * rr
    best = float("inf")
    for _ in range(repeat):
        x, y = x0.copy(), y0.copy()
        start = time.thread_time()
        t.transform(x, y, inplace=True, errcheck=False)
        best = min(best, time.thread_time() - start)
    return 1000 * best, t.definition


def profile_tiles(paths: list[str], outdir: str, threshold: float) -> tuple[StageTimer, Any]:
    """`process_tile` on every tile (after one warm-up tile), stages timed."""
    from pipeline import batch
    from pipeline.batch_plan import TileJob
    from pipeline.warp.grid import parse_crs
    from pipeline.warp.spec import WarpOptions
    from pipeline.warp.tile import warp_tile

    opts = batch.TileOptions(
        dst_crs=parse_crs(DST).to_wkt(),
        warp=WarpOptions(resampling="bilinear", error_threshold=threshold),
        overwrite=True,
    )
    timer = StageTimer()
    instrument_tile(timer)
    try:
        for i, path in enumerate([paths[0], *paths]):
            if i == 1:
                timer.clear()  # the first call paid imports, PROJ database, caches
            job = TileJob(path, os.path.join(outdir, os.path.basename(path)))
            record = batch.process_tile(job, opts)
            if record.status != "done":
                raise SystemExit(f"{path}: {record.status} {record.error}")
    finally:
        timer.restore()
    fill_rests(timer)
    return timer, warp_tile(paths[0], opts.dst_crs, opts.warp).spec


def profile_chunk(path: pathlib.Path, chunk: int, threshold: float) -> tuple[StageTimer, Any, Any]:
    """`warp_file_window` on middle destination chunks of ``path``'s default chunking
    (``chunk`` x ``chunk`` when ``chunk`` > 0), after a warm-up on another chunk."""
    from pipeline.io.open import file_source, open_raster
    from pipeline.warp import grid, tile
    from pipeline.warp.graph import destination_chunks
    from pipeline.warp.reproject import warp_spec
    from pipeline.warp.spec import WarpOptions

    da = open_raster(path)
    source = file_source(da, lazy=True)
    if source is None:
        raise SystemExit(f"{path}: no direct-read source")
    spec = warp_spec(da, DST, WarpOptions(resampling="bilinear", error_threshold=threshold))
    chunks = destination_chunks(chunk or None, spec)
    windows = grid.source_windows(spec.src, spec.dst, chunks, halo=spec.halo)
    edges = [np.concatenate([[0], np.cumsum(c)]) for c in chunks]

    def window(i: int, j: int) -> Any:
        return grid.Window(
            int(edges[0][i]), int(edges[0][i + 1]), int(edges[1][j]), int(edges[1][j + 1])
        )

    # Warm up on a corner chunk, then time up to 3 full chunks of the middle diagonal: they
    # share (almost) no source block, so each read decodes its blocks (GDAL's block cache
    # would serve a repeated window without decoding).
    m = min(len(chunks[0]), len(chunks[1])) // 2
    full = [
        k
        for k in (m - 1, m, m + 1)
        if 0 <= k < min(len(chunks[0]), len(chunks[1]))
        and chunks[0][k] == chunks[0][m]
        and chunks[1][k] == chunks[1][m]
        and windows[k][k] is not None
    ]
    runs = [(0, len(chunks[1]) - 1), *[(k, k) for k in full]]
    timer = StageTimer()
    timer.wrap(tile, "warp_file_window", "warp_file_window")
    timer.wrap(tile, "read_source_window", "read_source_window")
    instrument_warp(timer)
    try:
        for n, (i, j) in enumerate(runs):
            if n == 1:
                timer.clear()
            src_win = windows[i][j]
            if src_win is not None:
                tile.warp_file_window(source, spec, src_win, window(i, j), "uint8")
    finally:
        timer.restore()
    fill_rests(timer)
    return timer, spec, window(m, m)


def print_table(
    title: str, rows: list[tuple[str, int]], timers: dict[float, StageTimer], extras: list[Any]
) -> None:
    """One row per stage, CPU and wall ms per transformer."""
    width = max(len(label) + 2 * depth for label, depth in rows + [(e[0], 0) for e in extras])
    head = "".join(f"  {'et ' + format(t, 'g'):>17s}" for t in timers)
    print(f"\n{title}\n  {'':{width}s}{head}")
    print(f"  {'stage (median per call)':{width}s}" + "   CPU ms  wall ms" * len(timers))
    for label, depth in rows:
        cells = ""
        for timer in timers.values():
            cpu, wall = timer.median_ms(label)
            cells += f" {cpu:8.2f} {wall:8.2f}"
        print(f"  {' ' * 2 * depth + label:{width}s}{cells}")
    for label, values in extras:
        print(f"  {label:{width}s}" + "".join(f" {v:8.2f} {'':8s}" for v in values))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=24)
    ap.add_argument("--size", type=int, default=8192, help="reprojection input size")
    ap.add_argument(
        "--chunk", type=int, default=0, help="chunk edge (0: the default chunking; -1 skips)"
    )
    ap.add_argument("--workdir")
    a = ap.parse_args()
    import rasterio
    from bench_batch import _make_tiles
    from bench_reproject import make_input

    work = a.workdir or tempfile.mkdtemp(prefix="profile-warp-")
    tiles = os.path.join(work, "tiles")
    paths = sorted(glob.glob(os.path.join(tiles, "*.tif")))
    if len(paths) < a.tiles:
        _make_tiles(tiles, a.tiles, 512, 3)
        paths = sorted(glob.glob(os.path.join(tiles, "*.tif")))
    paths = paths[: a.tiles]
    outdir = os.path.join(work, "profile-out")
    os.makedirs(outdir, exist_ok=True)
    print(
        f"rasterio {rasterio.__version__} / GDAL {rasterio.__gdal_version__}; one thread, "
        f"in process; wall times include other sessions' load, CPU times hardly do"
    )
    timers: dict[float, StageTimer] = {}
    spec: Any = None
    for t in THRESHOLDS:
        timers[t], spec = profile_tiles(paths, outdir, t)
    from pipeline.warp.grid import Window

    whole = Window(0, spec.dst.height, 0, spec.dst.width)
    floor, definition = pyproj_transform_ms(spec, whole)
    extras = [
        ("GDAL transformer alone (C API)", [gdal_transform_ms(spec, whole, t) for t in timers]),
        ("pyproj, same points (one call)", [floor for _ in timers]),
    ]
    print(
        f"\nbatch tile: {len(paths)} tiles 512x512x3 uint8 -> dst {spec.dst.width}x"
        f"{spec.dst.height} (warp blocks {spec.block[0]}x{spec.block[1]}), XSCALE "
        f"{spec.xscale:.4f} YSCALE {spec.yscale:.4f}, bilinear; PROJ (dst -> src): {definition}"
    )
    print_table("batch.process_tile, stage by stage", TILE_ROWS, timers, extras)
    if a.chunk >= 0:
        path = pathlib.Path(work) / f"reproject-{a.size}.tif"
        if not path.exists():
            make_input(path, a.size)
        chunk_timers: dict[float, StageTimer] = {}
        dst_win: Any = None
        for t in THRESHOLDS:
            # a new thread: its own dataset handle (pipeline.io.open keeps one per thread)
            with ThreadPoolExecutor(1) as pool:
                chunk_timers[t], spec, dst_win = pool.submit(
                    profile_chunk, path, a.chunk, t
                ).result()
        extras = [
            (
                "GDAL transformer alone (C API)",
                [gdal_transform_ms(spec, dst_win, t) for t in chunk_timers],
            ),
            (
                "pyproj, same points (one call)",
                [pyproj_transform_ms(spec, dst_win)[0]] * len(chunk_timers),
            ),
        ]
        h, w = dst_win.shape
        print(
            f"\nreprojection chunk: {w}x{h} of the {spec.dst.width}x{spec.dst.height} "
            f"destination of bench_reproject's {a.size}x{a.size}x3 input (warp blocks "
            f"{spec.block[0]}x{spec.block[1]}), median of up to 3 diagonal chunks"
        )
        print_table("tile.warp_file_window, stage by stage", CHUNK_ROWS, chunk_timers, extras)
    total = {t: statistics.median(timers[t].cpu["process_tile"]) for t in timers}
    print(
        "\nper tile CPU: "
        + ", ".join(f"et {t:g}: {1000 * v:.1f} ms" for t, v in total.items())
        + f"; {os.cpu_count()} cores fully used: {(os.cpu_count() or 1) / total[0.125]:.1f} "
        "tiles/s at the default"
    )


if __name__ == "__main__":
    main()
