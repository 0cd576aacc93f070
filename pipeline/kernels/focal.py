"""Focal (moving-window) statistics over a square ``size`` x ``size`` window:
``focal-mean``, ``focal-min``, ``focal-max``.

Nodata neighbours and pixels beyond the raster edge are ignored (the statistic is taken over
the valid pixels of the window); a nodata centre stays nodata. Windows are evaluated
separably (a row pass, then a column pass, each in a fixed order), so a pixel's result
depends only on the pixels of its window, never on the chunking.

``focal-mean`` returns float32 for inputs of up to 16-bit integers and float32, float64
otherwise (``numpy.result_type(dtype, float32)``); ``focal-min``/``focal-max`` keep the dtype.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from pipeline.errors import KernelError
from pipeline.kernels.registry import KernelSpec, register_kernel


@numba.njit(nogil=True, cache=False)
def _focal_mean_core(src, valid, k, out_nodata, out):
    nb, ny, nx = out.shape
    d = k // 2
    rows = ny + 2 * d
    row_sum = np.empty((rows, nx), dtype=np.float64)
    row_count = np.empty((rows, nx), dtype=np.int64)
    for b in range(nb):
        for r in range(rows):
            for c in range(nx):
                total = 0.0
                count = 0
                for j in range(k):
                    if valid[b, r, c + j]:
                        total += src[b, r, c + j]
                        count += 1
                row_sum[r, c] = total
                row_count[r, c] = count
        for r in range(ny):
            for c in range(nx):
                if not valid[b, r + d, c + d]:
                    out[b, r, c] = out_nodata
                    continue
                total = 0.0
                count = 0
                for i in range(k):
                    total += row_sum[r + i, c]
                    count += row_count[r + i, c]
                out[b, r, c] = total / count


@numba.njit(nogil=True, cache=False)
def _better(v, m, want_max):
    return v > m if want_max else v < m


@numba.njit(nogil=True, cache=False)
def _focal_extreme_core(src, valid, k, want_max, out_nodata, out):
    nb, ny, nx = out.shape
    d = k // 2
    rows = ny + 2 * d
    row_best = np.empty((rows, nx), dtype=src.dtype)
    row_found = np.empty((rows, nx), dtype=np.bool_)
    for b in range(nb):
        for r in range(rows):
            for c in range(nx):
                found = False
                best = src[b, r, c]
                for j in range(k):
                    if valid[b, r, c + j]:
                        v = src[b, r, c + j]
                        if not found or _better(v, best, want_max):
                            best = v
                            found = True
                row_best[r, c] = best
                row_found[r, c] = found
        for r in range(ny):
            for c in range(nx):
                if not valid[b, r + d, c + d]:
                    out[b, r, c] = out_nodata
                    continue
                best = row_best[r + d, c]  # the centre's row always holds a valid pixel
                for i in range(k):
                    if row_found[r + i, c] and _better(row_best[r + i, c], best, want_max):
                        best = row_best[r + i, c]
                out[b, r, c] = best


def _out(block: np.ndarray, size: int, dtype: Any) -> np.ndarray:
    nb, ny, nx = block.shape
    return np.empty((nb, ny - 2 * (size // 2), nx - 2 * (size // 2)), dtype=dtype)


def _fill(out: np.ndarray, out_nodata: Any) -> Any:
    return out.dtype.type(0 if out_nodata is None else out_nodata)


def focal_mean(
    block: np.ndarray, *, size: int = 3, valid: np.ndarray, out_nodata: Any
) -> np.ndarray:
    """Mean of the valid pixels of each ``size`` x ``size`` window.

    Parameters
    ----------
    block : ndarray
        ``(band, y + size - 1, x + size - 1)``: the chunk with a ``size // 2`` halo.
    size : int, default 3
        Odd window edge in pixels.
    valid, out_nodata
        Context from `apply_kernel` (see `KernelSpec`).

    Returns
    -------
    ndarray
        ``(band, y, x)`` of ``numpy.result_type(block.dtype, float32)``; ``out_nodata``
        where the centre is invalid.
    """
    out = _out(block, size, np.result_type(block.dtype, np.float32))
    _focal_mean_core(block, valid, size, _fill(out, out_nodata), out)
    return out


def focal_min(
    block: np.ndarray, *, size: int = 3, valid: np.ndarray, out_nodata: Any
) -> np.ndarray:
    """Minimum of the valid pixels of each ``size`` x ``size`` window.

    Parameters
    ----------
    block : ndarray
        ``(band, y + size - 1, x + size - 1)``: the chunk with a ``size // 2`` halo.
    size : int, default 3
        Odd window edge in pixels.
    valid, out_nodata
        Context from `apply_kernel` (see `KernelSpec`).

    Returns
    -------
    ndarray
        ``(band, y, x)`` of ``block.dtype``; ``out_nodata`` where the centre is invalid.
    """
    out = _out(block, size, block.dtype)
    _focal_extreme_core(block, valid, size, False, _fill(out, out_nodata), out)
    return out


def focal_max(
    block: np.ndarray, *, size: int = 3, valid: np.ndarray, out_nodata: Any
) -> np.ndarray:
    """Maximum of the valid pixels of each ``size`` x ``size`` window.

    Parameters
    ----------
    block : ndarray
        ``(band, y + size - 1, x + size - 1)``: the chunk with a ``size // 2`` halo.
    size : int, default 3
        Odd window edge in pixels.
    valid, out_nodata
        Context from `apply_kernel` (see `KernelSpec`).

    Returns
    -------
    ndarray
        ``(band, y, x)`` of ``block.dtype``; ``out_nodata`` where the centre is invalid.
    """
    out = _out(block, size, block.dtype)
    _focal_extreme_core(block, valid, size, True, _fill(out, out_nodata), out)
    return out


def _validate(params: dict[str, Any], n_bands: int) -> dict[str, Any]:
    size = params["size"]
    if (
        isinstance(size, bool)
        or not isinstance(size, int | np.integer)
        or size < 1
        or size % 2 == 0
    ):
        raise KernelError(f"focal kernels: size must be an odd integer >= 1, got {size!r}")
    params["size"] = int(size)
    return params


def _halo(params: Any) -> int:
    size = params["size"]
    return int(size) // 2


def _register(name: str, func: Any, what: str, output_dtype: Any) -> KernelSpec:
    return register_kernel(
        KernelSpec(
            name=name,
            func=func,
            description=f"{what} of the valid pixels in a size x size window (nodata ignored)",
            depth=_halo,
            output_dtype=output_dtype,
            params={"size": 3},
            nodata="kernel",
            validate=_validate,
            releases_gil=True,
        )
    )


FOCAL_MEAN = _register("focal-mean", focal_mean, "mean", lambda dt: np.result_type(dt, np.float32))
FOCAL_MIN = _register("focal-min", focal_min, "minimum", lambda dt: dt)
FOCAL_MAX = _register("focal-max", focal_max, "maximum", lambda dt: dt)
