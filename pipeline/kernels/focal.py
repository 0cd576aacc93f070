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

import numpy as np

from pipeline.errors import KernelError
from pipeline.kernels._numba import nogil_kernel
from pipeline.kernels.registry import KernelSpec, register_kernel


@nogil_kernel
def _focal_mean_core(src, valid, k, out_nodata, out):
    # Row sums of the last k rows live in a ring of k rows (slot = row % k), so the
    # temporaries stay in cache instead of two (rows, x) float64/int64 arrays; the column
    # pass adds the same values in the same order (rows r .. r + k - 1), so results are equal.
    nb, ny, nx = out.shape
    d = k // 2
    rows = ny + 2 * d
    row_sum = np.empty((k, nx), dtype=np.float64)
    row_count = np.empty((k, nx), dtype=np.int64)
    total = np.empty(nx, dtype=np.float64)
    count = np.empty(nx, dtype=np.int64)
    for b in range(nb):
        for r in range(rows):
            slot = r % k
            for c in range(nx):
                t = 0.0
                n = 0
                for j in range(k):
                    if valid[b, r, c + j]:
                        t += src[b, r, c + j]
                        n += 1
                row_sum[slot, c] = t
                row_count[slot, c] = n
            o = r - (k - 1)  # the output row whose window ends at row r
            if o < 0:
                continue
            total[:] = 0.0
            count[:] = 0
            for i in range(k):
                s = (o + i) % k
                for c in range(nx):
                    total[c] += row_sum[s, c]
                    count[c] += row_count[s, c]
            for c in range(nx):
                if valid[b, o + d, c + d]:
                    out[b, o, c] = total[c] / count[c]
                else:
                    out[b, o, c] = out_nodata


@nogil_kernel
def _better(v, m, want_max):
    return v > m if want_max else v < m


@nogil_kernel
def _focal_extreme_core(src, valid, k, want_max, out_nodata, out):
    # Row extremes of the last k rows in a ring of k rows, as in _focal_mean_core.
    nb, ny, nx = out.shape
    d = k // 2
    rows = ny + 2 * d
    row_best = np.empty((k, nx), dtype=src.dtype)
    row_found = np.empty((k, nx), dtype=np.bool_)
    best_of_window = np.empty(nx, dtype=src.dtype)
    for b in range(nb):
        for r in range(rows):
            slot = r % k
            for c in range(nx):
                found = False
                best = src[b, r, c]
                for j in range(k):
                    if valid[b, r, c + j]:
                        v = src[b, r, c + j]
                        if not found or _better(v, best, want_max):
                            best = v
                            found = True
                row_best[slot, c] = best
                row_found[slot, c] = found
            o = r - (k - 1)
            if o < 0:
                continue
            # The centre's row always holds a valid pixel where the centre is valid; each
            # window's rows are compared in order (i = 0 .. k - 1) as a plain loop would.
            best_of_window[:] = row_best[(o + d) % k]
            for i in range(k):
                s = (o + i) % k
                for c in range(nx):
                    if row_found[s, c] and _better(row_best[s, c], best_of_window[c], want_max):
                        best_of_window[c] = row_best[s, c]
            for c in range(nx):
                if valid[b, o + d, c + d]:
                    out[b, o, c] = best_of_window[c]
                else:
                    out[b, o, c] = out_nodata


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
