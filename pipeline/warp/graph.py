"""The dask graph of a chunked warp: one task per destination chunk.

Each task depends only on the source chunks its footprint touches (the chunk's edges densified
to 21 points each, transformed to the source, padded by `WarpSpec.halo`, clipped;
`pipeline.warp.grid.source_windows`); destination chunks outside the source are fill tasks
without dependencies. When the source is an untouched `open_raster` array (a
`pipeline.io.open.FileSource`), each task reads exactly that padded window from the file
itself (`pipeline.warp.tile.warp_file_window`) and depends on nothing: dask would otherwise
keep every source chunk in memory until all destination chunks needing it ran -- a band of
chunks as wide as the raster -- so peak memory grew with the raster's width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Union

import dask.array as dsa
import numpy as np
from dask.array.core import concatenate3

from pipeline import chunking
from pipeline.errors import ChunkingError
from pipeline.io.files import FileSource
from pipeline.warp.grid import Window
from pipeline.warp.spec import WarpSpec
from pipeline.warp.tile import warp_and_cast, warp_file_window

ChunksArg = Union[  # noqa: UP007
    int, tuple[int, int], tuple[Sequence[int], Sequence[int]], Mapping[str, int], None
]

#: Default destination chunk edge, before rounding to the warp's block grid: 1024 rather than
#: 2048 is as fast with less peak memory (each thread holds a smaller chunk, source window and
#: warp buffer).
DEFAULT_CHUNK = 1024
#: Largest default chunk in bytes (all bands), and largest source window it may need; the
#: edge shrinks (1024, 768, 512, then 256, 128) until both fit.
DEFAULT_CHUNK_BYTES = 64 * 2**20
DEFAULT_SOURCE_BYTES = 128 * 2**20
#: Widest default chunk for a remote source (see `destination_chunks`).
REMOTE_MAX_WIDTH = 8192


def _default_edge(count: int, itemsize: int, xscale: float, yscale: float) -> int:
    """Chunk edge whose output and source window (``edge / scale`` when shrinking) both fit."""
    shrink = 1.0 / min(xscale, 1.0) / min(yscale, 1.0)
    pixel = count * itemsize
    for edge in (DEFAULT_CHUNK, 768, 512, 256):
        if edge * edge * pixel <= DEFAULT_CHUNK_BYTES and (
            edge * edge * pixel * shrink <= DEFAULT_SOURCE_BYTES
        ):
            return edge
    return 128


def _whole_blocks(edge: int, block: int) -> int:
    """``edge`` rounded down to a multiple of ``block`` (at least one block)."""
    return max(block, edge // block * block)


def _strips(
    height: int, width: int, edge: int, block: tuple[int, int], pixel: int
) -> tuple[chunking.Chunks1D, chunking.Chunks1D]:
    """Chunks of about ``edge * edge`` pixels (of ``pixel`` bytes, all bands) as wide as the
    grid, up to `REMOTE_MAX_WIDTH` and to a block row of `DEFAULT_CHUNK_BYTES`."""
    block_rows, block_cols = block
    widest = min(REMOTE_MAX_WIDTH, DEFAULT_CHUNK_BYTES // (block_rows * pixel))
    cx = chunking.balanced_block_multiple(width, max(widest, block_cols), block_cols)
    cy = _whole_blocks(edge * edge // max(1, min(cx, width)), block_rows)
    return chunking.regular_chunks(height, cy), chunking.regular_chunks(width, cx)


def destination_chunks(
    chunks: ChunksArg, spec: WarpSpec, *, remote: bool = False
) -> tuple[chunking.Chunks1D, chunking.Chunks1D]:
    """Normalise ``chunks`` to ``(y chunks, x chunks)`` for the destination grid.

    The default is made of whole blocks of the warp's block grid (``spec.block``), about
    `DEFAULT_CHUNK` pixels on a side, smaller when a chunk or its source window would be too
    large. Explicit chunks may be anything: results do not depend on them.

    For a ``remote`` source the default chunks have the same area but are strips as wide as
    the grid (split evenly when wider than `REMOTE_MAX_WIDTH`, at least one block row tall):
    GDAL fetches a run of consecutive blocks of a row of the file with one HTTP request, so a
    strip's source window costs one request per block row, where square chunks cost one per
    block row per chunk column (``benchmarks/bench_remote.py``: 8 requests instead of 20 for
    a window of 6 x 6 blocks; rioxarray's 2048-pixel chunks make 14).
    """
    height, width = spec.dst.shape
    if chunks is None:
        itemsize = np.dtype(spec.dtype).itemsize
        edge = _default_edge(spec.count, itemsize, spec.xscale, spec.yscale)
        if remote:
            return _strips(height, width, edge, spec.block, spec.count * itemsize)
        block_rows, block_cols = spec.block
        return (
            chunking.regular_chunks(height, _whole_blocks(edge, block_rows)),
            chunking.regular_chunks(width, _whole_blocks(edge, block_cols)),
        )
    if isinstance(chunks, Mapping):
        unknown = set(chunks) - {"y", "x"}
        if unknown:
            raise ChunkingError(f"unknown destination chunk dimension(s) {sorted(unknown)!r}")
        cy, cx = int(chunks.get("y", height)), int(chunks.get("x", width))
    elif isinstance(chunks, int) and not isinstance(chunks, bool):
        cy = cx = chunks
    elif (
        isinstance(chunks, tuple)
        and len(chunks) == 2
        and all(isinstance(c, Sequence) for c in chunks)
    ):
        ys = tuple(int(c) for c in chunks[0])  # type: ignore[union-attr]
        xs = tuple(int(c) for c in chunks[1])  # type: ignore[union-attr]
        if sum(ys) != height or sum(xs) != width or min(ys + xs) < 1:
            raise ChunkingError(
                f"explicit chunks must be positive and sum to the destination shape "
                f"{spec.dst.shape!r}, got sums {(sum(ys), sum(xs))!r}"
            )
        return ys, xs
    elif isinstance(chunks, tuple) and len(chunks) == 2:
        cy, cx = int(chunks[0]), int(chunks[1])  # type: ignore[arg-type]
    else:
        raise ChunkingError(
            f"chunks must be None, an int, (y, x), ((y chunks), (x chunks)) or a dict, "
            f"got {chunks!r}"
        )
    if cy < 1 or cx < 1:
        raise ChunkingError(f"chunk sizes must be positive, got {(cy, cx)!r}")
    return chunking.regular_chunks(height, cy), chunking.regular_chunks(width, cx)


def _fill(shape: tuple[int, int, int], value: float | None, dtype: str) -> np.ndarray:
    """A destination chunk no source pixel reaches."""
    return np.full(shape, 0 if value is None else value, dtype=dtype)


def _warp_blocks(
    blocks: list[Any],
    crop: tuple[int, int, int, int],
    source_window: Window,
    dst_window: Window,
    spec: WarpSpec,
    out_dtype: str,
) -> np.ndarray:
    """Assemble the touched source blocks, crop them to the padded window and warp."""
    r0, r1, c0, c1 = crop
    source = concatenate3(blocks)[:, r0:r1, c0:c1]
    return warp_and_cast(spec, source, source_window, dst_window, out_dtype)


def build_graph(
    name: str,
    data: dsa.Array,
    windows: list[list[Window | None]],
    chunks: tuple[chunking.Chunks1D, chunking.Chunks1D],
    spec: WarpSpec,
    out_dtype: str,
    file: FileSource | None = None,
) -> dict[Any, Any]:
    """One task per destination chunk, fed only by the source blocks its window touches.

    Parameters
    ----------
    name : str
        Name of the dask layer (keys ``(name, 0, i, j)``).
    data : dask.array.Array
        The ``(band, y, x)`` source.
    windows : list of list of Window or None
        `pipeline.warp.grid.source_windows` of ``chunks`` (None: a fill task).
    chunks : (y chunks, x chunks)
        Destination chunks.
    spec : WarpSpec
        The warp, the same for every task.
    out_dtype : str
        dtype of the result (``spec.dtype`` is GDAL's working type, uint8 for bool).
    file : FileSource, optional
        ``data`` is that file's untouched `open_raster` array: each task reads its padded
        source window from the file itself instead, and depends on nothing.
    """
    band_chunks, y_chunks, x_chunks = data.chunks
    y_edges = np.concatenate([[0], np.cumsum(y_chunks)])
    x_edges = np.concatenate([[0], np.cumsum(x_chunks)])
    dy_edges = np.concatenate([[0], np.cumsum(chunks[0])])
    dx_edges = np.concatenate([[0], np.cumsum(chunks[1])])
    count = sum(band_chunks)
    dsk: dict[Any, Any] = {}
    for i in range(len(chunks[0])):
        for j in range(len(chunks[1])):
            dst_window = Window(
                int(dy_edges[i]), int(dy_edges[i + 1]), int(dx_edges[j]), int(dx_edges[j + 1])
            )
            key = (name, 0, i, j)
            win = windows[i][j]
            if win is None:
                dsk[key] = (_fill, (count, *dst_window.shape), spec.dst_nodata, out_dtype)
                continue
            if file is not None:
                dsk[key] = (warp_file_window, file, spec, win, dst_window, out_dtype)
                continue
            yi = range(
                int(np.searchsorted(y_edges, win.row0, side="right")) - 1,
                int(np.searchsorted(y_edges, win.row1, side="left")),
            )
            xi = range(
                int(np.searchsorted(x_edges, win.col0, side="right")) - 1,
                int(np.searchsorted(x_edges, win.col1, side="left")),
            )
            blocks = [
                [[(data.name, b, y, x) for x in xi] for y in yi] for b in range(len(band_chunks))
            ]
            top, left = int(y_edges[yi[0]]), int(x_edges[xi[0]])
            crop = (win.row0 - top, win.row1 - top, win.col0 - left, win.col1 - left)
            dsk[key] = (_warp_blocks, blocks, crop, win, dst_window, spec, out_dtype)
    return dsk


__all__ = ["DEFAULT_CHUNK", "ChunksArg", "build_graph", "destination_chunks"]
