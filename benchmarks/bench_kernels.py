"""Benchmark: every built-in kernel on 1 vs 2 threads, and slope / focal-mean vs numpy/scipy.

What is measured
----------------
Inputs are generated in memory, both with a projected CRS and ``--chunk``-pixel chunks held
in memory as contiguous arrays (as blocks read by ``open_raster`` are; its automatic chunks
for these rasters are the same 1024 x 1024 pixels):

- a ``--size`` x ``--size`` float32 DEM (``pipeline.kernels.testing.synthetic_dem``) with a
  few nodata holes, for the terrain and focal kernels (and the seed kernel, ``reverse-bands``,
  whose ~20 s of CPU per run would quadruple on more bands);
- a 4-band uint16 image with reflectance-like values 0-10000 and nodata 0, for the kernels
  made for imagery: ``band-math`` (NDVI), ``rescale`` (a 0-10000 -> uint8 stretch), ``cast``
  and ``threshold``.

Every kernel is compiled by numba on a small input first, and run once at full size, untimed.
A timing is the execution, by dask's threaded scheduler (``dask.threaded.get``) with
``num_workers`` 1 or 2, of the ``dask.array.store`` graph of the lazy ``apply_kernel`` result
into a preallocated, already touched numpy array, so chunks are computed and copied by the
worker threads with no serial concatenation. The graph is built, optimised and materialised
beforehand, untimed: going through ``dask.compute`` would redo that collection handling on
every call (~2 ms with the GIL held, measured; 10-15% of a run of the cheapest kernels).
1- and 2-thread runs alternate ``--repeat`` times; the best of each is kept.

What remains of dask in a timing is its per-task scheduling, ~0.25 ms with the GIL held per
chunk. Next to ``threshold``'s ~0.7 ms of work on a one-band 1024 x 1024 chunk that held its
speedup to 1.72-1.89x on the DEM (measured), which is why the per-pixel kernels are timed on
the 4-band image, with four bands of work per task.

(a) Speedup 1 -> 2 threads for each built-in kernel. Target >= 1.7: it only holds if the
    kernel releases the GIL (numba ``nogil=True``) so both threads compute at once.
(b) For ``slope`` and ``focal-mean`` (3 x 3): the 2-thread time divided by a plain whole-array
    implementation with the same nodata and edge rules (numpy slicing for Horn's slope,
    ``scipy.ndimage.uniform_filter`` for the mean of valid pixels). Target < 1 (faster). The
    reference results are compared with pipeline's (printed max difference). scipy is not a
    dependency of the project (it would cost every command ~0.17 s of start-up: dask.array
    imports it when it is installed), so run this benchmark with it added:
    ``uv run --with scipy python benchmarks/bench_kernels.py``.

"cores used" is this process's CPU time over wall time in the best 2-thread run: at most 1
while the GIL serialises the threads, close to 2 when both threads compute. "other CPU" is
the CPU time the rest of the machine used during the best runs (``/proc/stat``): on a shared
machine it explains noisy speedups. A control kernel, the same slope loop compiled without
``nogil``, runs under the same conditions.

Usage::

    uv run --with scipy python benchmarks/bench_kernels.py     # 4096 x 4096, best of 7
    uv run --with scipy python benchmarks/bench_kernels.py --size 2048 --kernels slope focal-mean
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import dask
import dask.array
import dask.threaded
import numba
import numpy as np
import xarray as xr
from dask.core import flatten
from stages import machine_busy_seconds

import pipeline
from pipeline.kernels import KernelSpec, terrain
from pipeline.kernels.testing import georeferenced, synthetic_dem
from pipeline.testing import synthetic_array

SPEEDUP_TARGET = 1.7
NODATA = -9999.0
PARAMS: dict[str, dict[str, Any]] = {
    "reverse-bands": {},
    "band-math": {"expr": "(b4 - b3) / (b4 + b3)"},
    "slope": {},
    "aspect": {},
    "hillshade": {},
    "focal-mean": {},
    "focal-min": {},
    "focal-max": {},
    "rescale": {"in_min": 0.0, "in_max": 10000.0, "dtype": "uint8", "out_max": 254.0},
    "cast": {"dtype": "int16"},
    "threshold": {"value": 5000.0},
}
#: Kernels timed on the 4-band image; the others run on the DEM.
IMAGE_KERNELS = ("band-math", "rescale", "cast", "threshold")


# Control: the very same slope loop compiled *without* nogil. Under identical (possibly noisy)
# conditions its speedup shows what holding the GIL costs; the gap to `slope` is the proof that
# the built-ins release it.
_slope_core_gil = numba.njit(nogil=False, cache=False)(terrain._slope_core.py_func)


def _slope_holding_the_gil(
    block: np.ndarray, *, valid: np.ndarray, cellsize: Any, out_nodata: Any
) -> np.ndarray:
    out = np.empty((block.shape[0], block.shape[1] - 2, block.shape[2] - 2), dtype=np.float32)
    src = np.asarray(block, dtype=np.float64)
    _slope_core_gil(src, valid, cellsize[0], cellsize[1], 1.0, out_nodata, out)
    return out


CONTROL = KernelSpec(
    name="slope-gil-control",
    func=_slope_holding_the_gil,
    description="slope compiled without nogil (benchmark control)",
    depth=1,
    output_dtype=np.float32,
    nodata="kernel",
    output_nodata=float("nan"),
    releases_gil=True,  # not true: declared so that apply_kernel does not warn here
)


def kernel_ref(kernel: str) -> str | KernelSpec:
    return CONTROL if kernel == CONTROL.name else kernel


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="raster height and width")
    parser.add_argument("--chunk", type=int, default=1024, help="chunk edge in pixels")
    parser.add_argument("--repeat", type=int, default=7, help="timings per case; best is kept")
    parser.add_argument("--kernels", nargs="+", default=list(PARAMS), choices=list(PARAMS))
    parser.add_argument(
        "--no-control", action="store_true", help="skip the GIL-holding slope control"
    )
    args = parser.parse_args(argv)
    for name in ("size", "chunk", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer")
    return args


Timing = tuple[float, float | None, float]


def timed(run: Callable[[], object]) -> Timing:
    """Wall time of ``run``, CPU the rest of the machine used meanwhile, and CPU/wall of ours.

    The last figure is the number of cores this process kept busy: at most 1 while the GIL
    serialises the threads, up to 2 with two threads that release it (if the cores are free).
    """
    busy0, own0, t0 = machine_busy_seconds(), time.process_time(), time.perf_counter()
    run()
    wall = time.perf_counter() - t0
    own = time.process_time() - own0
    busy1 = machine_busy_seconds()
    other = None if busy0 is None or busy1 is None else max(0.0, busy1 - busy0 - own)
    return wall, other, own / wall


def best_of(repeat: int, *runs: Callable[[], object]) -> list[Timing]:
    """Best timing of each of ``runs``, run interleaved ``repeat`` times (noise hits all)."""
    best: list[Timing] = [(float("inf"), None, 0.0)] * len(runs)
    for _ in range(repeat):
        for i, run in enumerate(runs):
            best[i] = min(best[i], timed(run), key=lambda t: t[0])
    return best


def inputs(size: int, chunk: int) -> dict[str, xr.DataArray]:
    """The DEM (with nodata holes) and the 4-band image (nodata 0), chunked."""
    dem = synthetic_dem(size, size, seed=0)
    step = max(size // 8, 4)
    for k in range(1, 8):
        dem[0, k * step : k * step + 3, k * step : k * step + 40] = NODATA
    bands = synthetic_array(4, size, size, dtype="uint16", seed=0)
    arrays = {"dem": georeferenced(dem, nodata=NODATA), "bands": georeferenced(bands, nodata=0)}
    # Chunks as contiguous arrays in memory, like blocks freshly read by open_raster (slices of
    # one big array would be strided views, which is not what kernels see in a pipeline).
    return {
        key: da.chunk({"y": chunk, "x": chunk})
        .copy(data=da.chunk({"y": chunk, "x": chunk}).data.map_blocks(np.ascontiguousarray))
        .persist(scheduler="threads")
        for key, da in arrays.items()
    }


def source_for(kernel: str, data: dict[str, xr.DataArray]) -> xr.DataArray:
    return data["bands"] if kernel in IMAGE_KERNELS else data["dem"]


def warm_up(kernels: list[str], data: dict[str, xr.DataArray]) -> float:
    """Compile every kernel (same dtypes as the timed runs) on a small corner of the inputs."""
    t0 = time.perf_counter()
    for kernel in kernels:
        small = source_for(kernel, data).isel(y=slice(0, 64), x=slice(0, 64))
        lazy_result(small, kernel).compute(scheduler="sync")
    return time.perf_counter() - t0


def lazy_result(da: xr.DataArray, kernel: str) -> xr.DataArray:
    """``apply_kernel`` (graph construction only, a few milliseconds, not timed)."""
    return pipeline.apply_kernel(da, kernel_ref(kernel), **PARAMS.get(kernel, {}))


#: A materialised task graph and the keys to compute.
StoreGraph = tuple[dict[Any, Any], list[Any]]


def store_graph(out: xr.DataArray, target: np.ndarray) -> StoreGraph:
    """The optimised graph that stores every chunk of ``out`` into ``target`` (not timed).

    Built once per kernel, as the module docstring says: the timings are of executing it.
    """
    stored = dask.array.store(out.data, target, lock=False, compute=False)
    (optimized,) = dask.optimize(stored)
    return dict(optimized.__dask_graph__()), list(flatten(optimized.__dask_keys__()))


def compute_into_memory(
    out: xr.DataArray,
    threads: int,
    target: np.ndarray | None = None,
    graph: StoreGraph | None = None,
) -> np.ndarray:
    """Compute every chunk on ``threads`` and store it into ``target`` (allocated if None).

    Reusing a target keeps the kernel's page faults (zeroing fresh memory, ~30 ms for
    64 MiB) out of the timings; ``graph`` is `store_graph`'s result for that target.
    """
    if target is None:
        target = np.empty(out.shape, dtype=out.dtype)
    if graph is None:
        graph = store_graph(out, target)
    dsk, keys = graph
    dask.threaded.get(dsk, keys, num_workers=threads)
    return target


def numpy_slope(dem: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Horn's slope on the whole array with numpy slicing (nodata and edge rule as pipeline)."""
    z = np.where(dem == NODATA, np.nan, dem.astype(np.float64))
    pad = np.pad(z, 1, constant_values=np.nan)
    h, w = z.shape

    def at(r: int, c: int) -> np.ndarray:
        v = pad[1 + r : 1 + r + h, 1 + c : 1 + c + w]
        return np.where(np.isnan(v), z, v)

    west = at(-1, -1) + 2 * at(0, -1) + at(1, -1)
    east = at(-1, 1) + 2 * at(0, 1) + at(1, 1)
    north = at(-1, -1) + 2 * at(-1, 0) + at(-1, 1)
    south = at(1, -1) + 2 * at(1, 0) + at(1, 1)
    gx, gy = (east - west) / (8 * dx), (south - north) / (8 * dy)
    return np.degrees(np.arctan(np.hypot(gx, gy))).astype(np.float32)


def scipy_focal_mean(dem: np.ndarray) -> np.ndarray:
    """Mean of the valid pixels of each 3 x 3 window with scipy (NaN for nodata centres)."""
    try:
        from scipy.ndimage import uniform_filter
    except ImportError:
        raise SystemExit(
            "the focal-mean anchor needs scipy: "
            "uv run --with scipy python benchmarks/bench_kernels.py"
        ) from None
    valid = dem != NODATA
    total = uniform_filter(np.where(valid, dem, 0).astype(np.float64), 3, mode="constant")
    count = uniform_filter(valid.astype(np.float64), 3, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (total / count).astype(np.float32)
    out[~valid] = np.nan
    return out


def fmt_other(other: float | None) -> str:
    return "   n/a" if other is None else f"{other:6.2f}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table; exit status 1 if a result is wrong."""
    args = parse_args(argv)
    print(
        f"bench_kernels: {args.size} x {args.size}, chunks {args.chunk}, best of {args.repeat}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start"
    )
    data = inputs(args.size, args.chunk)
    kernels = list(args.kernels) + ([] if args.no_control else [CONTROL.name])
    print(f"numba warm-up (compilation, not timed): {warm_up(kernels, data):.1f} s")
    print(
        f"{'kernel':<18}{'1 thread':>10}{'2 threads':>11}{'speedup':>9}  cores used (2 thr)"
        "  other CPU 1/2 thr (s)"
    )
    failed = []
    two_threads: dict[str, float] = {}
    for kernel in kernels:
        out = lazy_result(source_for(kernel, data), kernel)
        repeat = 1 if kernel == "reverse-bands" else args.repeat  # ~20 s of CPU per run
        target = compute_into_memory(out, 2)  # untimed: first touch of memory, caches
        graph = store_graph(out, target)  # untimed: graph construction and optimisation
        (t1, o1, _), (t2, o2, cores) = best_of(
            repeat,
            lambda: compute_into_memory(out, 1, target, graph),  # noqa: B023
            lambda: compute_into_memory(out, 2, target, graph),  # noqa: B023
        )
        two_threads[kernel] = t2
        speedup = t1 / t2
        verdict = "ok" if speedup >= SPEEDUP_TARGET else f"FAIL (< {SPEEDUP_TARGET})"
        if kernel == CONTROL.name:
            verdict = "(control: holds the GIL, expected ~1x)"
        print(
            f"{kernel:<18}{t1:9.3f}s{t2:10.3f}s{speedup:8.2f}x  {cores:17.2f}"
            f"  {fmt_other(o1)} / {fmt_other(o2)}  {verdict}"
        )
    dem = np.asarray(data["dem"].values[0])
    dx, dy = (abs(r) for r in data["dem"].rio.resolution())
    references: dict[str, Callable[[], np.ndarray]] = {
        "slope": lambda: numpy_slope(dem, dx, dy),
        "focal-mean": lambda: scipy_focal_mean(dem),
    }
    for kernel, reference in references.items():
        if kernel not in two_threads:
            continue
        [(t_ref, o_ref, _)] = best_of(args.repeat, reference)
        ratio = two_threads[kernel] / t_ref
        out = compute_into_memory(lazy_result(data["dem"], kernel), 2)[0].astype(np.float64)
        out[out == NODATA] = np.nan  # focal-mean keeps the input's nodata value, slope has NaN
        expected = reference()
        diff = float(np.nanmax(np.abs(out - expected)))
        same_nodata = bool(np.array_equal(np.isnan(out), np.isnan(expected)))
        if not same_nodata or diff > 1e-3:
            failed.append(kernel)
        verdict = "ok" if ratio < 1.0 else "FAIL (>= 1)"
        print(
            f"{kernel}: pipeline 2 threads {two_threads[kernel]:.3f} s vs whole-array "
            f"{'numpy' if kernel == 'slope' else 'scipy'} {t_ref:.3f} s (other CPU "
            f"{fmt_other(o_ref).strip()} s): ratio {ratio:.2f} {verdict}; "
            f"max |difference| {diff:.2g}, same nodata: {same_nodata}"
        )
    if failed:
        print(f"FAILED: results differ from the reference for {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
