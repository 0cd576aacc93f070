"""Pure chunk and block maths: no I/O, no dask, deterministic."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

Chunks1D = tuple[int, ...]


def regular_chunks(size: int, step: int) -> Chunks1D:
    """Split ``size`` into chunks of ``step`` with a shorter last chunk, e.g. (4, 4, 2)."""
    if size <= 0:
        return (0,)
    step = max(1, min(step, size))
    full, rest = divmod(size, step)
    return (step,) * full + ((rest,) if rest else ())


def round_to_multiple(value: int, block: int) -> int:
    """Round ``value`` to the nearest positive multiple of ``block``."""
    return max(block, round(value / block) * block)


def balanced_block_multiple(size: int, target: int, block: int) -> int:
    """Chunk length near ``target`` that is a multiple of ``block`` and splits ``size`` evenly.

    The axis is cut into ``ceil(size / target)`` pieces and each piece is rounded up to a whole
    number of blocks, so a 4096-pixel axis with 512-pixel blocks and a 3000-pixel target gives
    2048, not 3072 + 1024.
    """
    if size <= block:
        return size
    pieces = max(1, math.ceil(size / max(target, 1)))
    step = math.ceil(math.ceil(size / pieces) / block) * block
    return min(step, math.ceil(size / block) * block)


def auto_spatial_chunks(
    shape_yx: tuple[int, int],
    block_yx: tuple[int, int],
    *,
    bytes_per_pixel: int,
    target_bytes: int,
) -> tuple[Chunks1D, Chunks1D]:
    """Block-aligned (y, x) chunks of about ``target_bytes`` each (all bands together).

    Striped layouts (a block spanning the full width) keep full-width chunks and stack strips;
    tiled layouts get square-ish chunks made of whole tiles.
    """
    height, width = shape_yx
    by, bx = block_yx
    target_pixels = max(1, target_bytes // max(1, bytes_per_pixel))
    if bx >= width:  # striped: full-width row bands
        rows = max(1, target_pixels // max(1, width))
        cy = balanced_block_multiple(height, rows, by)
        return regular_chunks(height, cy), (width,)
    side = max(1, int(math.sqrt(target_pixels)))
    cy = balanced_block_multiple(height, side, by)
    cx = balanced_block_multiple(width, side, bx)
    return regular_chunks(height, cy), regular_chunks(width, cx)


def is_block_aligned(chunks: Sequence[int], block: int) -> bool:
    """True when every chunk edge except the array's end falls on a multiple of ``block``."""
    edge = 0
    for c in chunks[:-1]:
        edge += c
        if edge % block:
            return False
    return True


def write_block_size(chunks: Sequence[int], *, max_block: int = 512, multiple: int = 16) -> int:
    """TIFF tile length for one axis such that every chunk is a whole number of tiles.

    Returns the largest multiple of ``multiple`` (GeoTIFF tiles are multiples of 16) that is at
    most ``max_block`` and divides every interior chunk edge, or 0 when no such length exists
    (the caller must then rechunk). An axis held in one chunk takes ``max_block`` (or less when
    the axis is short).
    """
    size = sum(chunks)
    interior = list(chunks[:-1])
    if not interior:
        return min(max_block, math.ceil(size / multiple) * multiple)
    g = 0
    for c in interior:
        g = math.gcd(g, c)
    for cand in range(min(max_block, g) // multiple * multiple, 0, -multiple):
        if g % cand == 0:
            return cand
    return 0


#: One piece of a halo-extended chunk along one axis: ``(block, src0, src1, dst0, dst1)``,
#: source block ``block``'s ``[src0, src1)`` goes to ``[dst0, dst1)`` of the extended chunk.
HaloSpan = tuple[int, int, int, int, int]


def halo_spans(chunks: Sequence[int], depth: int) -> list[tuple[HaloSpan, ...]]:
    """For each chunk, the pieces of source blocks that fill it once extended by ``depth``.

    Chunk ``i`` covering ``[start, stop)`` is extended to ``[start - depth, stop + depth)``,
    clipped to the axis; every block that intersects it contributes one piece, in order, so
    chunks thinner than ``depth`` simply bring in blocks further away. Positions beyond the
    axis ends are not covered: the extended chunk's ``[0, first dst0)`` and ``[last dst1,
    stop - start + 2 * depth)`` are for the caller to fill.
    """
    edges = [0]
    for c in chunks:
        edges.append(edges[-1] + int(c))
    size = edges[-1]
    spans: list[tuple[HaloSpan, ...]] = []
    for i in range(len(chunks)):
        origin = edges[i] - depth
        lo, hi = max(0, origin), min(size, edges[i + 1] + depth)
        pieces = []
        j = max(0, bisect.bisect_right(edges, lo) - 1)
        while j < len(chunks) and edges[j] < hi:
            a, b = max(lo, edges[j]), min(hi, edges[j + 1])
            if a < b:
                pieces.append((j, a - edges[j], b - edges[j], a - origin, b - origin))
            j += 1
        spans.append(tuple(pieces))
    return spans
