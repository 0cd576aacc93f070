"""Remote windows read block by block through one per-process cache: no block fetched twice.

Each thread reads through its own GDAL dataset handle (handles are not thread-safe), and GDAL
keeps what a handle fetched with that handle (its block cache; a window of several blocks is
fetched with one multi-range request that bypasses the shared /vsicurl/ cache). Two threads
reading neighbouring windows (destination chunks of a reproject share the source blocks along
their edges) thus fetched the shared blocks twice: 1.75x the bytes the job needs with 2 threads,
1.0x with one (benchmarks/bench_remote.py). Here the blocks a window touches are read once per
process, while the other threads wait for the blocks they share with it (striped locks,
`pipeline.io.vsi.block_locks`), and kept in an LRU of decoded blocks of `CACHE_BYTES`.
Local files are not read through it: the OS page cache already shares them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
from rasterio.windows import Window

from pipeline.io.vsi import block_locks

#: Decoded bytes of remote blocks kept per process.
CACHE_BYTES = 128 * 2**20

_cache: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
_cached_bytes = 0
_lock = threading.Lock()


def _get(key: tuple[Any, ...]) -> np.ndarray | None:
    with _lock:
        block = _cache.get(key)
        if block is not None:
            _cache.move_to_end(key)
        return block


def _put(key: tuple[Any, ...], block: np.ndarray) -> None:
    global _cached_bytes
    with _lock:
        if key in _cache:
            return
        _cache[key] = block
        _cached_bytes += block.nbytes
        while _cached_bytes > CACHE_BYTES and len(_cache) > 1:
            _cached_bytes -= _cache.popitem(last=False)[1].nbytes


def clear() -> None:
    """Forget every cached block (after a read was cut short, or in tests)."""
    global _cached_bytes
    with _lock:
        _cache.clear()
        _cached_bytes = 0


def _rectangles(
    blocks: list[tuple[int, int]],
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Cover ``blocks`` (sorted ``(row, col)``) with few ``((i0, i1), (j0, j1))`` rectangles:
    runs of consecutive columns in a row, stacked over consecutive rows with the same run. A
    rectangle is one read: GDAL fetches a row of blocks as one range."""
    runs: list[tuple[int, int, int]] = []  # (row, j0, j1)
    for i, j in blocks:
        if runs and runs[-1][0] == i and runs[-1][2] == j:
            runs[-1] = (i, runs[-1][1], j + 1)
        else:
            runs.append((i, j, j + 1))
    rects: list[tuple[tuple[int, int], tuple[int, int]]] = []
    for i, j0, j1 in runs:
        match = next(
            (k for k, ((_, r1), cols) in enumerate(rects) if r1 == i and cols == (j0, j1)), None
        )
        if match is None:
            rects.append(((i, i + 1), (j0, j1)))
        else:
            (r0, _), cols = rects[match]
            rects[match] = ((r0, i + 1), cols)
    return rects


def read_blocks(
    ds: Any,
    key: tuple[Any, ...],
    indexes: list[int],
    dtype: str,
    rows: tuple[int, int],
    cols: tuple[int, int],
    *,
    read: Callable[..., np.ndarray] | None = None,
) -> np.ndarray:
    """``ds.read(indexes, window=rows x cols, out_dtype=dtype)``, assembled from whole blocks.

    Parameters
    ----------
    ds : rasterio dataset
        This thread's handle of the file (or of one of its overviews).
    key : tuple
        What names the file and level in the cache (identity and overview level).
    indexes, dtype, rows, cols
        As `pipeline.io.files.read_window` takes them.
    read : callable, optional
        Stand-in for ``ds.read`` (tests).
    """
    by, bx = ds.block_shapes[0]
    height, width = ds.height, ds.width
    (r0, r1), (c0, c1) = rows, cols
    block_rows = range(r0 // by, max(r0, r1 - 1) // by + 1)
    block_cols = range(c0 // bx, max(c0, c1 - 1) // bx + 1)
    names = [(*key, tuple(indexes), dtype, i, j) for i in block_rows for j in block_cols]
    blocks = {name[-2:]: _get(name) for name in names}
    if any(b is None for b in blocks.values()):
        extent = (
            (block_rows[0] * by, min(height, (block_rows[-1] + 1) * by)),
            (block_cols[0] * bx, min(width, (block_cols[-1] + 1) * bx)),
        )
        with block_locks(str(key), None, *extent, (by, bx)):
            blocks = {name[-2:]: _get(name) for name in names}
            missing = sorted(ij for ij, b in blocks.items() if b is None)
            reader = read or ds.read
            for (i0, i1), (j0, j1) in _rectangles(missing):
                br0, br1 = i0 * by, min(height, i1 * by)
                bc0, bc1 = j0 * bx, min(width, j1 * bx)
                window = Window(bc0, br0, bc1 - bc0, br1 - br0)
                data = reader(indexes, window=window, out_dtype=dtype)
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        y0, x0 = i * by - br0, j * bx - bc0
                        block = np.ascontiguousarray(data[:, y0 : y0 + by, x0 : x0 + bx])
                        blocks[(i, j)] = block
                        _put((*key, tuple(indexes), dtype, i, j), block)
    out = np.empty((len(indexes), r1 - r0, c1 - c0), dtype=dtype)
    for (i, j), cached in blocks.items():
        if cached is None:  # cannot happen: every missing block was read above
            raise RuntimeError(f"block {i},{j} of {key!r} was not read")
        y0, x0 = i * by, j * bx
        ya, yb = max(r0, y0), min(r1, y0 + cached.shape[1])
        xa, xb = max(c0, x0), min(c1, x0 + cached.shape[2])
        if ya < yb and xa < xb:
            part = cached[:, ya - y0 : yb - y0, xa - x0 : xb - x0]
            out[:, ya - r0 : yb - r0, xa - c0 : xb - c0] = part
    return out


__all__ = ["CACHE_BYTES", "clear", "read_blocks"]
