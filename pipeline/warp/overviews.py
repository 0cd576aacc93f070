"""Overview-aware reads: which overview a shrinking warp reads, and its warp (no I/O).

`reproject` (and batch's direct path) compute the destination grid from the full-resolution
source, then, when the warp shrinks the source by `MIN_SHRINK` or more and the file has
overviews, read the overview `best_overview_level` picks and warp it onto that same grid with
`overview_warp_spec` (XSCALE/YSCALE recomputed for the overview, so averaging kernels cover
the right footprint). This is what ``gdalwarp -ovr AUTO`` (its default) does; ``-ovr NONE``
is ``overviews=False``.

Mirrored from GDAL 3.10 (``GDALWarpDirect`` in ``apps/gdalwarp_lib.cpp``): the candidate
order, the decimation factor ``full width / overview width`` (x only), the 0.1 tolerance and
the oversampling threshold of 1.0. Deliberate differences: the shrink factor is taken from the
global XSCALE/YSCALE of the warp (`pipeline.warp.grid.warp_scale`, the smaller ratio of the two
axes as GDAL does) rather than from gdalwarp's own sampling of the grid; overviews are only
considered from a 2x shrink (`MIN_SHRINK`; gdalwarp already takes a 2x overview above a 1.9x
shrink); ``GDALWARP_OVERSAMPLING_THRESHOLD`` is not read from the environment. The source
nodata and the PROJ area of interest stay those of the full-resolution source.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from affine import Affine

from pipeline.warp import grid
from pipeline.warp.grid import GridSpec
from pipeline.warp.spec import WarpSpec

#: Overviews are considered only when the warp shrinks the source at least this much
#: (source pixels per destination pixel along the less shrunk axis).
MIN_SHRINK = 2.0

#: gdalwarp's tolerance on decimation factors ("because of numerical instability").
EPSILON = 0.1

#: gdalwarp's default ``GDALWARP_OVERSAMPLING_THRESHOLD`` (not read from the environment).
OVERSAMPLING_THRESHOLD = 1.0


def shrink_factor(xscale: float, yscale: float) -> float:
    """Source pixels per destination pixel along the less shrunk axis.

    ``xscale``/``yscale`` are the warp's global XSCALE/YSCALE (destination pixels per
    source pixel, `pipeline.warp.grid.warp_scale`); gdalwarp likewise takes the smaller of
    its x and y ratios (OSGeo/gdal#7019).
    """
    return 1.0 / max(xscale, yscale)


def best_overview_level(
    shrink: float,
    full_width: int,
    overview_widths: Sequence[int],
    *,
    oversampling_threshold: float = OVERSAMPLING_THRESHOLD,
) -> int | None:
    """The overview level ``gdalwarp -ovr AUTO`` reads for a warp shrinking by ``shrink``.

    Mirrors the overview selection of ``GDALWarpDirect`` in GDAL's ``apps/gdalwarp_lib.cpp``
    (GDAL 3.10): candidates are the full resolution (factor 1) and each overview, finest
    first, with decimation factor ``full width / overview width`` (x axis only, as GDAL);
    a candidate is taken when its factor is below ``shrink * oversampling_threshold + 0.1``
    and larger than the best so far, and the search stops at a factor within 0.1 of
    ``shrink``. Nothing is selected unless ``shrink > 1``.

    Parameters
    ----------
    shrink : float
        Source pixels per destination pixel (`shrink_factor`).
    full_width : int
        Width of the full-resolution image.
    overview_widths : sequence of int
        Width of each overview level, in the file's order.
    oversampling_threshold : float
        GDAL's ``GDALWARP_OVERSAMPLING_THRESHOLD`` (default 1.0, as GDAL).

    Returns
    -------
    int or None
        0-based overview level, or None for the full-resolution image.
    """
    if not shrink > 1.0:
        return None
    best_level: int | None = None
    best_factor = 0.0
    candidates = [(None, 1.0)] + [
        (level, full_width / width) for level, width in enumerate(overview_widths) if width > 0
    ]
    for level, factor in candidates:
        if factor >= shrink * oversampling_threshold + EPSILON or factor <= best_factor:
            continue
        best_level, best_factor = level, factor
        if abs(shrink - factor) < EPSILON:
            break
    return best_level


def overview_level_for(
    spec: WarpSpec, full_width: int, overview_widths: Sequence[int]
) -> int | None:
    """`best_overview_level` for the warp ``spec`` of the full-resolution source.

    None when the warp shrinks by less than `MIN_SHRINK` or there are no overviews.
    """
    shrink = shrink_factor(spec.xscale, spec.yscale)
    if shrink < MIN_SHRINK or not overview_widths:
        return None
    return best_overview_level(shrink, full_width, overview_widths)


def overview_grid(src: GridSpec, height: int, width: int) -> GridSpec:
    """The grid of a ``height`` x ``width`` overview of ``src``: same extent and CRS.

    The transform is scaled by ``full size / overview size`` per axis, as GDAL's overview
    datasets (and ``rasterio.open(..., overview_level=k)``) do.
    """
    scale = Affine.scale(src.width / width, src.height / height)
    return GridSpec(src.crs, src.transform * scale, width, height)


def overview_warp_spec(spec: WarpSpec, height: int, width: int) -> WarpSpec:
    """``spec`` with a ``height`` x ``width`` overview of its source as the source.

    The destination grid, resampling, nodata, dtype and PROJ area of interest are kept;
    XSCALE/YSCALE and ``SOURCE_EXTRA`` are recomputed for the overview's pixel size.
    """
    src = overview_grid(spec.src, height, width)
    xscale, yscale = grid.warp_scale(src, spec.dst)
    halo = grid.kernel_halo(spec.resampling, xscale, yscale)
    return dataclasses.replace(spec, src=src, xscale=xscale, yscale=yscale, source_extra=max(halo))


__all__ = [
    "EPSILON",
    "MIN_SHRINK",
    "OVERSAMPLING_THRESHOLD",
    "best_overview_level",
    "overview_grid",
    "overview_level_for",
    "overview_warp_spec",
    "shrink_factor",
]
