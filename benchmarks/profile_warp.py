"""Where the time of one batch tile (and of one reprojection chunk) goes, stage by stage.

Runs in one thread, in this process, on tiles made like ``bench_batch.py``'s (512x512x3 uint8,
UTM 18N -> EPSG:3857, bilinear) and prints the median milliseconds per stage of
``batch._warp_tile_direct``, the split of the warp itself (GDAL's exact transformer timed on its
own through the C API, the approximate transformer, nearest neighbour), PROJ's own cost for the
same destination points (pyproj) and the same for one 2048x2048x3 chunk of
``bench_reproject.py``'s input.

    uv run python benchmarks/profile_warp.py [--tiles 24] [--chunk 2048] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import glob
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import rasterio
from rasterio.io import MemoryFile
from rasterio.windows import Window as RioWindow

from pipeline import config, grid
from pipeline.io.profile import creation_profile
from pipeline.io.staged import fsync, publish, temp_path_for
from pipeline.reprojection import grid_warp_spec
from pipeline.verify import _block_table, _crs_matches, verify_raster, verify_written
from pipeline.warpengine import WARP_MEMORY_LIMIT, WarpSpec, _dst_nbytes
from pipeline.warpgrid import GridSpec, Window

DST = "EPSG:3857"
TIMES: dict[str, list[float]] = defaultdict(list)
CPU: dict[str, list[float]] = defaultdict(list)


@contextlib.contextmanager
def timed(name: str) -> Iterator[None]:
    """Wall and this thread's CPU milliseconds of the block (CPU time is what other sessions'
    load on the machine does not inflate)."""
    start, cpu = time.perf_counter(), time.thread_time()
    yield
    TIMES[name].append(1000 * (time.perf_counter() - start))
    CPU[name].append(1000 * (time.thread_time() - cpu))


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
    lib.CPLSetThreadLocalConfigOption.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib


def gdal_transform_ms(spec: WarpSpec, *, approx: bool = False, repeat: int = 5) -> float:
    """CPU milliseconds for GDAL's transformer to map every destination pixel centre to the
    source, one destination row per call as GDAL's warp kernel does (best of ``repeat``)."""
    lib = _libgdal()
    gt_t = ctypes.c_double * 6
    src_gt, dst_gt = gt_t(*spec.src.transform.to_gdal()), gt_t(*spec.dst.transform.to_gdal())
    arg = lib.GDALCreateGenImgProjTransformer3(
        spec.src.crs.to_wkt().encode(), src_gt, spec.dst.crs.to_wkt().encode(), dst_gt
    )
    func: Callable[..., int] = lib.GDALGenImgProjTransform
    handle = arg
    if approx:
        handle = lib.GDALCreateApproxTransformer(
            ctypes.cast(lib.GDALGenImgProjTransform, ctypes.c_void_p), arg, 0.125
        )
        func = lib.GDALApproxTransform
    w, h = spec.dst.width, spec.dst.height
    xs = np.empty(w, dtype="f8")
    ys = np.empty(w, dtype="f8")
    zs = np.zeros(w, dtype="f8")
    ok = np.zeros(w, dtype=np.intc)
    dp = ctypes.POINTER(ctypes.c_double)
    ptr = (xs.ctypes.data_as(dp), ys.ctypes.data_as(dp), zs.ctypes.data_as(dp))
    okp = ok.ctypes.data_as(ctypes.POINTER(ctypes.c_int))
    best = float("inf")
    cols = np.arange(w, dtype="f8") + 0.5
    for _ in range(repeat):
        start = time.thread_time()
        for row in range(h):
            xs[:] = cols
            ys[:] = row + 0.5
            func(handle, 1, w, *ptr, okp)
        best = min(best, time.thread_time() - start)
    if approx:
        lib.GDALDestroyTransformer(handle)
    lib.GDALDestroyTransformer(arg)
    return 1000 * best


def pyproj_transform_ms(spec: WarpSpec, *, repeat: int = 5) -> tuple[float, str]:
    """PROJ's own cost (pyproj, one call for all points) for the same destination points."""
    from pyproj import Transformer

    t = Transformer.from_crs(spec.dst.crs.to_wkt(), spec.src.crs.to_wkt(), always_xy=True)
    cols, rows = np.meshgrid(
        np.arange(spec.dst.width) + 0.5, np.arange(spec.dst.height) + 0.5, indexing="xy"
    )
    a = spec.dst.transform
    x0, y0 = a.c + a.a * cols + a.b * rows, a.f + a.d * cols + a.e * rows
    best = float("inf")
    for _ in range(repeat):
        x, y = x0.copy(), y0.copy()
        start = time.thread_time()
        t.transform(x, y, inplace=True, errcheck=False)
        best = min(best, time.thread_time() - start)
    return 1000 * best, t.definition


def _approx_xml(xml: str, error: float = 0.125) -> str:
    return xml.replace(
        "<Transformer><GenImgProjTransformer>",
        f"<Transformer><ApproxTransformer><MaxError>{error}</MaxError><BaseTransformer>"
        "<GenImgProjTransformer>",
    ).replace(
        "</GenImgProjTransformer></Transformer>",
        "</GenImgProjTransformer></BaseTransformer></ApproxTransformer></Transformer>",
    )


def warp_stages(
    spec: WarpSpec,
    data: np.ndarray,
    src_win: Window,
    dst_win: Window,
    memory_limit: int,
    *,
    prefix: str,
    variants: bool,
) -> np.ndarray:
    """`warpengine.warp_window`, its steps timed; with ``variants`` also the approximate
    transformer and nearest neighbour on the same source."""
    h, w = src_win.shape
    from affine import Affine

    window_transform = spec.src.transform * Affine.translation(src_win.col0, src_win.row0)
    out: np.ndarray = np.empty(0)
    with MemoryFile(ext=".tif") as raw:
        with (
            timed(f"{prefix}warp: source to /vsimem GTiff"),
            raw.open(
                driver="GTiff",
                width=w,
                height=h,
                count=spec.count,
                dtype=spec.dtype,
                crs=spec.src.crs,
                transform=window_transform,
            ) as ds,
        ):
            ds.write(np.ascontiguousarray(data))
        with timed(f"{prefix}warp: VRT XML + open"):
            source_xml = spec.source_vrt_xml(raw.name, src_win)
            src_vrt = MemoryFile(source_xml.encode(), ext=".vrt")
            xml = spec.warped_vrt_xml(src_vrt.name, memory_limit=memory_limit)
            warped = MemoryFile(xml.encode(), ext=".vrt")
            vrt = warped.open()
        dh, dw = dst_win.shape
        rw = RioWindow(dst_win.col0, dst_win.row0, dw, dh)
        with timed(f"{prefix}warp: read (exact transform + kernel)"):
            out = vrt.read(window=rw)
        vrt.close()
        warped.close()
        if variants:
            for name, text in (
                ("approx 0.125 transform + kernel", _approx_xml(xml)),
                (
                    "exact, nearest kernel",
                    xml.replace("<ResampleAlg>Bilinear<", "<ResampleAlg>NearestNeighbour<"),
                ),
                (
                    "approx, nearest kernel",
                    _approx_xml(xml).replace(
                        "<ResampleAlg>Bilinear<", "<ResampleAlg>NearestNeighbour<"
                    ),
                ),
            ):
                with (
                    MemoryFile(text.encode(), ext=".vrt") as mf,
                    mf.open() as v,
                    timed(f"{prefix}variant: {name}"),
                ):
                    v.read(window=rw)
        src_vrt.close()
    return out


def profile_tile(path: str, outdir: str) -> WarpSpec:
    """`batch._warp_tile_direct` for one tile, stage by stage."""
    with timed("open + metadata"):
        ds = rasterio.open(path)
        src = GridSpec(ds.crs, ds.transform, ds.width, ds.height)
        dtype = np.dtype(ds.dtypes[0])
        nodata, tags, descriptions = ds.nodata, ds.tags(), ds.descriptions
    with timed("read + decode"):
        data = ds.read()
    ds.close()
    with timed("warp spec (grid, XSCALE, AOI)"):
        spec = grid_warp_spec(
            src, dtype, data.shape[0], nodata, DST, source=path, resampling="bilinear"
        )
    limit = max(WARP_MEMORY_LIMIT, 4 * data.nbytes + 4 * _dst_nbytes(spec))
    whole_src = Window(0, spec.src.height, 0, spec.src.width)
    whole_dst = Window(0, spec.dst.height, 0, spec.dst.width)
    out = warp_stages(spec, data, whole_src, whole_dst, limit, prefix="", variants=True)
    max_block = int(config.get("write.max-block"))
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "count": out.shape[0],
        "height": out.shape[1],
        "width": out.shape[2],
        "dtype": out.dtype.name,
        "crs": spec.dst.crs,
        "transform": spec.dst.transform,
        "nodata": spec.dst_nodata,
        "tiled": True,
        "blockysize": grid.write_block_size((out.shape[1],), max_block=max_block),
        "blockxsize": grid.write_block_size((out.shape[2],), max_block=max_block),
        **creation_profile(out.dtype),
    }
    final = os.path.join(outdir, os.path.basename(path))
    tmp = temp_path_for(final)
    with (
        timed("encode + write (deflate, predictor 2)"),
        rasterio.open(tmp, "w", **profile) as dst,
    ):
        dst.write(out)
        dst.update_tags(**tags)
        for i, text in enumerate(descriptions, start=1):
            if text:
                dst.set_band_description(i, text)
    with timed("fsync"):
        fsync(tmp)
    with timed("verify (all of verify_raster)"):
        res = verify_raster(tmp, crs=DST)
    assert res.ok, res.problems
    with timed("verify_written (no decode, batch since warp-perf)"):
        res = verify_written(tmp, out, crs=DST, nodata=spec.dst_nodata)
    assert res.ok, res.problems
    with rasterio.open(tmp) as v:
        with timed("  verify: CRS match (pyproj)"):
            _crs_matches(v.crs, DST)
        with timed("  verify: block table"):
            _block_table(v, os.path.getsize(tmp))
        with timed("  verify: decode every block"):
            for _, win in v.block_windows(1):
                v.read(window=win)
    with timed("publish (link + unlink)"):
        publish(tmp, final, overwrite=True)
    return spec


def profile_chunk(workdir: str, size: int, chunk: int) -> None:
    """One ``chunk`` x ``chunk`` destination chunk of bench_reproject's input."""
    import pathlib

    from bench_reproject import make_input

    from pipeline import warpgrid

    path = pathlib.Path(workdir) / f"reproject-{size}.tif"
    if not path.exists():
        make_input(path, size)
    with rasterio.open(path) as ds:
        src = GridSpec(ds.crs, ds.transform, ds.width, ds.height)
        spec = grid_warp_spec(src, np.dtype("uint8"), 3, ds.nodata, DST, resampling="bilinear")
        r0 = (spec.dst.height // 2 // chunk) * chunk
        c0 = (spec.dst.width // 2 // chunk) * chunk
        r1, c1 = min(r0 + chunk, spec.dst.height), min(c0 + chunk, spec.dst.width)
        dst_win = Window(r0, r1, c0, c1)
        halo = warpgrid.kernel_halo(spec.resampling, spec.xscale, spec.yscale)
        chunks = ((r0, r1 - r0, spec.dst.height - r1), (c0, c1 - c0, spec.dst.width - c1))
        found = warpgrid.source_windows(spec.src, spec.dst, chunks, halo=halo)[1][1]
        assert found is not None
        src_win = found
        with timed("chunk: read + decode source window"):
            data = ds.read(window=RioWindow(src_win.col0, src_win.row0, *src_win.shape[::-1]))
    for _ in range(3):
        warp_stages(spec, data, src_win, dst_win, WARP_MEMORY_LIMIT, prefix="chunk ", variants=True)
    sub = WarpSpec(
        src=spec.src,
        dst=GridSpec(
            spec.dst.crs,
            spec.dst.transform * spec.dst.transform.translation(c0, r0),
            c1 - c0,
            r1 - r0,
        ),
        resampling=spec.resampling,
        dtype=spec.dtype,
        count=spec.count,
        src_nodata=spec.src_nodata,
        dst_nodata=spec.dst_nodata,
        xscale=spec.xscale,
        yscale=spec.yscale,
        source_extra=spec.source_extra,
    )
    for name, ms in (
        ("chunk GDAL exact transformer alone", gdal_transform_ms(sub, repeat=3)),
        ("chunk GDAL approx transformer alone", gdal_transform_ms(sub, approx=True)),
        ("chunk pyproj transform, same points", pyproj_transform_ms(sub, repeat=3)[0]),
    ):
        TIMES[name].append(ms)
        CPU[name].append(ms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=24)
    ap.add_argument("--chunk", type=int, default=2048, help="0 skips the chunk profile")
    ap.add_argument("--size", type=int, default=8192, help="reprojection input size")
    ap.add_argument("--workdir")
    a = ap.parse_args()
    work = a.workdir or tempfile.mkdtemp(prefix="profile-warp-")
    tiles = os.path.join(work, "tiles")
    if not os.path.isdir(tiles):
        from bench_batch import _make_tiles

        _make_tiles(tiles, a.tiles, 512, 3)
    outdir = os.path.join(work, "profile-out")
    os.makedirs(outdir, exist_ok=True)
    paths = sorted(glob.glob(os.path.join(tiles, "*.tif")))[: a.tiles]
    spec = profile_tile(paths[0], outdir)  # warm-up: imports, PROJ database, caches
    TIMES.clear()
    CPU.clear()
    for p in paths:
        spec = profile_tile(p, outdir)
    floor, definition = pyproj_transform_ms(spec)
    for name, ms in (
        ("GDAL exact transformer alone (row by row)", gdal_transform_ms(spec)),
        ("GDAL approx transformer alone (0.125 px)", gdal_transform_ms(spec, approx=True)),
        ("pyproj Transformer.transform, same points", floor),
    ):
        TIMES[name].append(ms)
        CPU[name].append(ms)
    print(
        f"tile: {len(paths)} tiles 512x512x3 uint8 -> dst {spec.dst.width}x{spec.dst.height}, "
        f"XSCALE {spec.xscale:.4f} YSCALE {spec.yscale:.4f}, bilinear, one thread"
    )
    print(f"PROJ pipeline (dst -> src): {definition}")
    if a.chunk:
        profile_chunk(work, a.size, a.chunk)
    width = max(len(k) for k in TIMES)
    print(f"  {'stage (median over tiles / repeats)':{width}s}   CPU ms  wall ms")
    for name, values in TIMES.items():
        cpu = statistics.median(CPU[name])
        print(f"  {name:{width}s} {cpu:8.2f} {statistics.median(values):8.2f}")


if __name__ == "__main__":
    main()
