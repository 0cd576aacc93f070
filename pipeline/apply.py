"""Apply a kernel lazily to every chunk: one task per output chunk, with or without a halo.

The graph gains a single layer, ``pipeline-<kernel>-<token>``, with one task per output chunk
and the output chunked exactly as the input: ``map_blocks`` without a halo (a blockwise layer
that dask fuses with its blockwise neighbours), a layer built here with one. With a halo of
``depth`` pixels a task receives its chunk and every source block its extended window touches
(the 8 neighbours, or blocks further away when chunks are thinner than ``depth``), cuts the
halo strips from them into one padded block and runs the kernel on it
(`pipeline.chunking.halo_spans` does the window maths). Pixels beyond the raster edge are zero and
marked invalid (``valid`` is False there, as for nodata): edges are never reflected or
repeated, and a chunk's result does not depend on where the chunk boundaries are. Each worker
thread reuses its padded block and valid mask from one task to the next (up to
`_SCRATCH_MAX_BYTES` each), unless the kernel's result is a view of them.
"""

from __future__ import annotations

import inspect
import itertools
import math
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import dask.array as dsa
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from pipeline import chunking
from pipeline.errors import KernelError, PipelineWarning
from pipeline.io.colorinterp import COLORINTERP_KEY
from pipeline.io.colormap import COLORMAP_KEY
from pipeline.io.open import user_name
from pipeline.kernels import KernelSpec, resolve_kernel
from pipeline.kernels.cellsize import RowCellsize, row_cellsize
from pipeline.kernels.registry import CONTEXT_ARGS, BlockFunc

_DTYPE_ENCODING = ("dtype", "rasterio_dtype", "_Unsigned", "scale_factor", "add_offset")
_SCALE_ATTRS = ("scale_factor", "add_offset", "scales", "offsets")


@dataclass(frozen=True)
class _BlockPlan:
    """Everything a block task needs besides the block itself (small and picklable)."""

    name: str
    func: BlockFunc
    kwargs: dict[str, Any]
    wants: frozenset[str]
    depth: int
    shape_yx: tuple[int, int]
    starts: tuple[tuple[int, ...], tuple[int, ...]]
    policy: str
    nodata: Any
    out_nodata: Any
    out_dtype: np.dtype[Any]
    bands_out: int | None
    cellsize: RowCellsize | None


#: Largest scratch buffer a worker thread keeps between tasks (bigger ones are freed).
_SCRATCH_MAX_BYTES = 64 * 2**20
_scratch = threading.local()


def _take_scratch(slot: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised array, reusing the one this thread gave back last time if it fits.

    Freshly allocated blocks of megabytes are fresh pages: every task would page-fault them
    in again (zeroing them), and two threads faulting at once serialise in the kernel. The
    buffer is taken out of the pool while in use, so a nested computation gets its own.
    """
    pool = _scratch.__dict__.setdefault("pool", {})
    buffer = pool.pop(slot, None)
    if buffer is not None and buffer.shape == shape and buffer.dtype == dtype:
        return buffer
    return np.empty(shape, dtype=dtype)


def _give_back(slot: str, buffer: np.ndarray, result: np.ndarray) -> None:
    """Keep ``buffer`` for this thread's next task unless ``result`` still uses its memory."""
    if buffer.nbytes <= _SCRATCH_MAX_BYTES and not np.may_share_memory(buffer, result):
        _scratch.__dict__.setdefault("pool", {})[slot] = buffer


def _valid_mask(
    block: np.ndarray, plan: _BlockPlan, r0: int, c0: int, out: np.ndarray | None = None
) -> np.ndarray:
    """False where ``block`` is nodata, NaN, or beyond the raster edge (written into ``out``)."""
    valid = np.empty(block.shape, dtype=bool) if out is None else out
    nodata = plan.nodata
    has_nodata = nodata is not None and not (
        isinstance(nodata, float | np.floating) and math.isnan(nodata)
    )
    if block.dtype.kind == "f" and has_nodata:
        np.not_equal(block, np.asarray(nodata), out=valid)
        not_nan = _take_scratch("not-nan", block.shape, np.dtype(bool))
        np.logical_and(valid, np.equal(block, block, out=not_nan), out=valid)
        _give_back("not-nan", not_nan, valid)
    elif block.dtype.kind == "f":
        np.equal(block, block, out=valid)  # NaN is the only value unequal to itself
    elif has_nodata:
        np.not_equal(block, np.asarray(nodata), out=valid)
    else:
        valid[...] = True
    d = plan.depth
    if d:
        height, width = plan.shape_yx
        top, left = max(0, d - r0), max(0, d - c0)
        bottom = max(0, r0 + block.shape[1] - d - height)
        right = max(0, c0 + block.shape[2] - d - width)
        valid[:, :top] = False
        valid[:, block.shape[1] - bottom :] = False
        valid[:, :, :left] = False
        valid[:, :, block.shape[2] - right :] = False
    return valid


def _halo_block(
    blocks: list[list[np.ndarray]],
    rows: tuple[chunking.HaloSpan, ...],
    cols: tuple[chunking.HaloSpan, ...],
    padded: np.ndarray,
) -> np.ndarray:
    """Fill ``padded`` with the chunk and its halo cut from ``blocks`` (zero beyond the edge)."""
    if not rows or not cols:  # an empty axis
        padded[...] = 0
        return padded
    for (_, sy0, sy1, dy0, dy1), row in zip(rows, blocks, strict=True):
        for (_, sx0, sx1, dx0, dx1), block in zip(cols, row, strict=True):
            padded[:, dy0:dy1, dx0:dx1] = block[:, sy0:sy1, sx0:sx1]
    top, bottom, left, right = rows[0][3], rows[-1][4], cols[0][3], cols[-1][4]
    padded[:, :top] = 0
    padded[:, bottom:] = 0
    padded[:, top:bottom, :left] = 0
    padded[:, top:bottom, right:] = 0
    return padded


def _halo_task(
    blocks: list[list[np.ndarray]],
    rows: tuple[chunking.HaloSpan, ...],
    cols: tuple[chunking.HaloSpan, ...],
    shape: tuple[int, int, int],
    dtype: str,
    plan: _BlockPlan,
    iy: int,
    ix: int,
) -> np.ndarray:
    """One output chunk of a halo kernel: assemble the padded block once, run the kernel."""
    padded = _halo_block(blocks, rows, cols, _take_scratch("padded", shape, np.dtype(dtype)))
    valid = _take_scratch("valid", shape, np.dtype(bool)) if _needs_valid(plan) else None
    out = _run_block(padded, plan, iy, ix, valid)
    _give_back("padded", padded, out)
    if valid is not None:
        _give_back("valid", valid, out)
    return out


def _needs_valid(plan: _BlockPlan) -> bool:
    return "valid" in plan.wants or plan.policy == "propagate"


def _run_block(
    block: np.ndarray, plan: _BlockPlan, iy: int, ix: int, scratch: np.ndarray | None = None
) -> np.ndarray:
    """Call the kernel on one (halo-extended) block and return its trimmed, masked result.

    ``scratch``: a bool array like ``block`` to write the valid mask into.
    """
    r0, c0 = plan.starts[0][iy], plan.starts[1][ix]
    d = plan.depth
    valid = _valid_mask(block, plan, r0, c0, scratch) if _needs_valid(plan) else None
    context: dict[str, Any] = {}
    if "valid" in plan.wants:
        context["valid"] = valid
    if "nodata" in plan.wants:
        context["nodata"] = plan.nodata
    if "out_nodata" in plan.wants:
        context["out_nodata"] = plan.out_nodata
    if "cellsize" in plan.wants and plan.cellsize is not None:
        context["cellsize"] = plan.cellsize.rows(r0 - d, r0 - d + block.shape[1])
    out = np.asarray(plan.func(block, **plan.kwargs, **context))
    height, width = block.shape[1] - 2 * d, block.shape[2] - 2 * d
    if d and out.ndim == 3 and out.shape[1:] == block.shape[1:]:
        out = out[:, d : d + height, d : d + width]
    expected = (plan.bands_out or block.shape[0], height, width)
    if out.shape != expected:
        raise KernelError(
            f"kernel {plan.name!r} returned an array of shape {out.shape!r} for a block of "
            f"shape {block.shape!r}; expected {expected!r}"
        )
    if out.dtype != plan.out_dtype:
        out = out.astype(plan.out_dtype)
    if plan.policy == "propagate" and valid is not None and plan.out_nodata is not None:
        inner = valid[:, d : d + height, d : d + width]
        if out.shape[0] != inner.shape[0]:
            inner = np.logical_and.reduce(inner, axis=0, keepdims=True)
        if not inner.all():
            if np.may_share_memory(out, block) or not out.flags.writeable:
                out = out.copy()
            bad = np.broadcast_to(~inner, out.shape)
            np.copyto(out, np.asarray(plan.out_nodata).astype(plan.out_dtype), where=bad)
    return out


def _fits(value: Any, dtype: np.dtype[Any]) -> bool:
    """``value`` is exactly representable in ``dtype``."""
    v = float(value)
    if math.isnan(v):
        return dtype.kind == "f"
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return v.is_integer() and info.min <= v <= info.max
    if dtype.kind == "f":
        return bool(np.isinf(v) or float(dtype.type(v)) == v)
    return False


def default_output_nodata(in_dtype: np.dtype[Any], out_dtype: np.dtype[Any], nodata: Any) -> Any:
    """The output nodata value `KernelSpec.output_nodata` defaults to (see there)."""
    if nodata is not None and out_dtype == in_dtype:
        return nodata
    if out_dtype.kind == "f":
        return math.nan
    if nodata is not None and _fits(nodata, out_dtype):
        return nodata
    if nodata is None and in_dtype.kind != "f":
        return None  # integer input without nodata: no invalid pixel can occur
    info = np.iinfo(out_dtype)
    return info.max if out_dtype.kind == "u" else info.min


def _output_nodata(
    spec: KernelSpec, in_dtype: np.dtype[Any], out_dtype: np.dtype[Any], nodata: Any
) -> Any:
    if spec.nodata == "none":
        value = nodata if nodata is not None and _fits(nodata, out_dtype) else None
    elif spec.output_nodata is None:
        value = default_output_nodata(in_dtype, out_dtype, nodata)
    elif callable(spec.output_nodata):
        value = spec.output_nodata(in_dtype, out_dtype, nodata)
    else:
        value = spec.output_nodata
    if value is None:
        return None
    if not _fits(value, out_dtype):
        raise KernelError(
            f"kernel {spec.name!r}: output nodata {value!r} does not fit its "
            f"{out_dtype.name} output"
        )
    return out_dtype.type(value)


def _wanted_context(func: Callable[..., Any]) -> frozenset[str]:
    target = getattr(func, "py_func", func)
    try:
        names = set(inspect.signature(target).parameters)
    except (TypeError, ValueError):
        return frozenset()
    return frozenset(names & CONTEXT_ARGS)


def _gil_warning(spec: KernelSpec) -> str:
    func = spec.func
    what = (
        "a numba function compiled without nogil=True"
        if hasattr(func, "targetoptions")
        else "a Python function"
    )
    return (
        f"kernel {spec.name!r} holds the GIL ({what}), so dask threads run it one at a time; "
        "compile it with numba.njit(nogil=True), or run on process-based workers "
        "(pipeline compute --processes, or LocalCluster(processes=True))"
    )


def _layer_name(spec: KernelSpec, token: str) -> str:
    return f"pipeline-{re.sub(r'[^0-9A-Za-z_]+', '-', spec.name).strip('-')}-{token}"


def _func_id(func: Callable[..., Any]) -> str:
    base = getattr(func, "py_func", func)
    return f"{getattr(base, '__module__', '?')}.{getattr(base, '__qualname__', repr(base))}"


def _run_chunk(
    block: np.ndarray, plan: _BlockPlan, block_id: tuple[int, ...] | None = None
) -> np.ndarray:
    """`_run_block` as a ``map_blocks`` function (kernels without a halo)."""
    _, iy, ix = block_id or (0, 0, 0)
    return _run_block(block, plan, iy, ix)


def _halo_graph(name: str, data: dsa.Array, plan: _BlockPlan) -> dict[Any, Any]:
    """One task per output chunk, fed by every source block its padded window touches."""
    d = plan.depth
    dtype = data.dtype.str
    row_spans = chunking.halo_spans(data.chunks[1], d)
    col_spans = chunking.halo_spans(data.chunks[2], d)
    dsk: dict[Any, Any] = {}
    for b, iy, ix in itertools.product(*(range(len(c)) for c in data.chunks)):
        rows, cols = row_spans[iy], col_spans[ix]
        blocks = [[(data.name, b, r[0], c[0]) for c in cols] for r in rows]
        shape = (data.chunks[0][b], data.chunks[1][iy] + 2 * d, data.chunks[2][ix] + 2 * d)
        dsk[(name, b, iy, ix)] = (_halo_task, blocks, rows, cols, shape, dtype, plan, iy, ix)
    return dsk


def apply_kernel(
    da: xr.DataArray, kernel: str | KernelSpec | BlockFunc, **params: Any
) -> xr.DataArray:
    """Apply ``kernel`` to every chunk of ``da``, lazily.

    Parameters
    ----------
    da : xarray.DataArray
        ``(band, y, x)`` array, e.g. from `open_raster` (numpy-backed arrays are chunked).
    kernel : str, KernelSpec or callable
        A kernel name (see ``pipeline kernels``), a ``package.module:function`` reference, an
        entry-point name, a spec, or a function ``func(block, **params) -> block``.
    **params
        Kernel parameters; unknown names and missing required ones are refused.

    Returns
    -------
    xarray.DataArray
        Lazy result with the kernel's dtype: CRS, transform, coordinates and attributes are
        kept (the band coordinate becomes ``1..n`` when the band count changes) and
        ``_FillValue`` is the output nodata (see `KernelSpec.output_nodata`). Kernels with a
        halo run on chunks extended by their neighbours' pixels (for any chunk size, even
        below the halo). Output chunks equal the input's (kernels that mix bands get the
        band axis rechunked to one chunk first). The kernel's layer,
        ``pipeline-<kernel>-<token>``, has one task per output chunk and is deterministic for
        equal inputs and parameters.

    Raises
    ------
    KernelError
        Unknown kernel or parameter, bad parameter value, unsupported dims or dtype.

    Warns
    -----
    PipelineWarning
        A user kernel holds the GIL (it still runs, but threads do not help).
    """
    spec = resolve_kernel(kernel)
    merged = spec.merge_params(params)
    if da.dims != ("band", "y", "x"):
        raise KernelError(f"kernels expect dims ('band', 'y', 'x'), got {da.dims!r}")
    if da.dtype.kind not in "biuf":
        source = da.encoding.get("source", "input")
        raise KernelError(
            f"{source}: unsupported data type {da.dtype.name!r} for kernel {spec.name!r} "
            "(integer, float or bool rasters only)"
        )
    n_bands = int(da.sizes["band"])
    kwargs = spec.validate(dict(merged), n_bands) if spec.validate else merged
    depth = spec.halo(merged)
    out_dtype = spec.dtype_for(da.dtype, merged)
    if spec.releases_gil is False:
        warnings.warn(_gil_warning(spec), PipelineWarning, stacklevel=2)
    wants = _wanted_context(spec.func)
    nodata = da.rio.nodata
    out_nodata = _output_nodata(spec, da.dtype, out_dtype, nodata)
    cellsize = row_cellsize(da.rio.transform(), da.rio.crs) if "cellsize" in wants else None

    if not hasattr(da.data, "dask"):
        da = da.chunk()
    data = da.data
    if (spec.whole_band_axis or spec.bands_out is not None) and len(data.chunks[0]) > 1:
        data = data.rechunk({0: -1})
    ys, xs = data.chunks[1], data.chunks[2]
    plan = _BlockPlan(
        name=spec.name,
        func=spec.func,
        kwargs=kwargs,
        wants=wants,
        depth=depth,
        shape_yx=(int(da.sizes["y"]), int(da.sizes["x"])),
        starts=(tuple(np.cumsum((0, *ys[:-1])).tolist()), tuple(np.cumsum((0, *xs[:-1])).tolist())),
        policy=spec.nodata,
        nodata=nodata,
        out_nodata=out_nodata,
        out_dtype=out_dtype,
        bands_out=spec.bands_out,
        cellsize=cellsize,
    )
    token = tokenize(
        data.name, spec.name, _func_id(spec.func), kwargs, depth, out_dtype.str,
        out_nodata, spec.nodata, spec.bands_out, cellsize,
    )  # fmt: skip
    name = _layer_name(spec, token)
    band_chunks = (spec.bands_out,) if spec.bands_out is not None else data.chunks[0]
    meta = np.empty((0, 0, 0), dtype=out_dtype)
    if depth:
        graph = HighLevelGraph.from_collections(
            name, _halo_graph(name, data, plan), dependencies=[cast(Any, data)]
        )
        result = dsa.Array(graph, name, chunks=(band_chunks, ys, xs), dtype=out_dtype, meta=meta)
    else:  # a blockwise layer: dask fuses it with blockwise neighbours (reads, writes, store)
        result = data.map_blocks(
            _run_chunk,
            name=name,
            chunks=(band_chunks, ys, xs),
            dtype=out_dtype,
            meta=meta,
            plan=plan,
        )
    return _wrap(da, result, spec, out_nodata)


def _wrap(da: xr.DataArray, data: Any, spec: KernelSpec, out_nodata: Any) -> xr.DataArray:
    """``data`` as a DataArray with ``da``'s georeferencing and adjusted metadata."""
    n_in, n_out = int(da.sizes["band"]), int(data.shape[0])
    attrs = dict(da.attrs)
    if n_out == n_in:
        coords = dict(da.coords)
    else:
        coords = {k: v for k, v in da.coords.items() if "band" not in v.dims}
        coords["band"] = np.arange(1, n_out + 1, dtype=da["band"].dtype)
        attrs = {
            k: v for k, v in attrs.items() if not (isinstance(v, tuple | list) and len(v) == n_in)
        }
    if spec.units is not None:
        for key in _SCALE_ATTRS:
            attrs.pop(key, None)
        attrs.pop("units", None)
        if spec.units:
            attrs["units"] = spec.units
    attrs.pop("_FillValue", None)
    if out_nodata is not None:
        attrs["_FillValue"] = out_nodata
    out = xr.DataArray(data, coords=coords, dims=da.dims, attrs=attrs)
    out.name = user_name(da)  # not the dask name xarray would infer
    encoding = dict(da.encoding)
    encoding.pop("_FillValue", None)
    encoding.pop(COLORMAP_KEY, None)  # a kernel changes what the values mean
    encoding.pop(COLORINTERP_KEY, None)  # ... and what the bands are
    if data.dtype != da.dtype or spec.units is not None:
        for key in _DTYPE_ENCODING:
            encoding.pop(key, None)
    out.encoding = encoding
    return out
