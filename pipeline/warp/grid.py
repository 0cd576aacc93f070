"""Georeferenced grids and the pure maths of a tile-wise warp: no I/O, no dask, deterministic.

Everything a lazy warp needs to know before any pixel is read:

* `parse_crs`: user CRS input to a `rasterio.crs.CRS`, or a one-line `CRSInputError`.
* `destination_grid`: the output grid, computed once for the whole raster (what
  ``gdalwarp -t_srs`` / `rasterio.warp.calculate_default_transform` choose, with
  ``resolution``/``bounds``/``shape``/``-tap`` overrides and Mercator latitude clamping).
* `warp_scale`: the XSCALE/YSCALE GDAL's warper computes for a whole-raster warp, so every
  chunk can be warped with the same kernel footprint.
* `source_windows`: for every destination chunk, the source pixel window its densified
  footprint touches, padded by the resampling kernel's radius (``None``: nothing to read).

Coordinates are pixel edges: pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``
and ``transform * (col, row)`` is its upper-left corner, as in rasterio.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from pyproj.exceptions import CRSError as ProjCRSError
from rasterio.crs import CRS
from rasterio.transform import array_bounds, from_bounds
from rasterio.warp import aligned_target, calculate_default_transform

from pipeline.errors import CRSInputError, ReprojectError
from pipeline.warp.resampling import METHODS, resampling_name

#: Latitude limit of the (pseudo-)Mercator square world, ``atan(sinh(pi))`` in degrees.
MERCATOR_MAX_LATITUDE = 85.0511287798066

#: Points per chunk edge when transforming footprints (GDAL's ``SAMPLE_STEPS`` default).
EDGE_SAMPLES = 21

#: Extra source pixels around every footprint, on top of the kernel radius.
SAFETY_PIXELS = 2

_CRS_HELP = "give EPSG:3857, an authority code (AUTH:CODE), a PROJ string or WKT"


def parse_crs(value: Any) -> CRS:
    """Validate ``value`` with pyproj and return it as a `rasterio.crs.CRS`.

    Parameters
    ----------
    value : str, int, pyproj.CRS or rasterio.crs.CRS
        ``"EPSG:3857"``, ``3857``, ``"ESRI:102100"``, a PROJ string, WKT, or a CRS object.

    Raises
    ------
    CRSInputError
        Empty, unknown, ambiguous (a name several CRSs match) or non-CRS input; the one-line
        message shows the value and says what would be accepted.
    """
    if isinstance(value, CRS):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        raise CRSInputError(f"missing CRS {value!r}; {_CRS_HELP}")
    if isinstance(value, str | int):
        return _parse_crs_cached(value)
    return _parse_crs(value)


@functools.lru_cache(maxsize=64)
def _parse_crs_cached(value: str | int) -> CRS:
    """`_parse_crs` of a string or code: a batch parses the same destination WKT every tile
    (~0.25 ms); a CRS is immutable, so every caller may share the result. Errors are not
    cached (lru_cache does not keep exceptions)."""
    return _parse_crs(value)


def _parse_crs(value: Any) -> CRS:
    """`parse_crs` without the cache."""
    try:
        proj_crs = ProjCRS.from_user_input(value)
    except ProjCRSError as err:
        text = " ".join(str(err).split())
        if "several objects matching" in text:
            reason = "ambiguous name: several CRSs match it"
        elif "not a CRS" in text:
            reason = "it names a projection method or datum, not a CRS"
        else:
            reason = "not recognised by PROJ"
        raise CRSInputError(f"invalid CRS {value!r} ({reason}); {_CRS_HELP}") from err
    except TypeError as err:
        raise CRSInputError(f"invalid CRS {value!r}; {_CRS_HELP}") from err
    if not proj_crs.is_projected and not proj_crs.is_geographic:
        raise CRSInputError(
            f"CRS {value!r} is neither geographic nor projected ({proj_crs.type_name}); {_CRS_HELP}"
        )
    return CRS.from_wkt(proj_crs.to_wkt())


@dataclass(frozen=True)
class GridSpec:
    """A georeferenced pixel grid: CRS, affine transform (upper-left corners) and size."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``."""
        return (self.height, self.width)

    @property
    def is_rectilinear(self) -> bool:
        """True when the transform has no rotation or shear."""
        return self.transform.b == 0 and self.transform.d == 0

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` of the grid's envelope in its CRS."""
        left, bottom, right, top = array_bounds(self.height, self.width, self.transform)
        return (float(left), float(bottom), float(right), float(top))

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return ("GridSpec", self.crs.to_wkt(), tuple(self.transform)[:6], self.shape)


@functools.lru_cache(maxsize=64)
def _geodetic_transformer(wkt: str, thread: int) -> Transformer | None:
    """From a CRS to its own geographic CRS (None: it has none); cached per CRS and thread
    like `_cached_transformer`, as every tile of a batch shares its source CRS."""
    crs = ProjCRS.from_wkt(wkt)
    geodetic = crs.geodetic_crs
    if geodetic is None:
        return None
    return Transformer.from_crs(crs, geodetic, always_xy=True)


def area_of_interest(src: GridSpec) -> tuple[float, float, float, float] | None:
    """Source extent in degrees of its own geographic CRS (GDAL's ``AREA_OF_INTEREST``)."""
    try:
        transformer = _geodetic_transformer(src.crs.to_wkt(), threading.get_ident())
        if transformer is None:
            return None
        west, south, east, north = transformer.transform_bounds(*src.bounds, densify_pts=21)
    except Exception:  # pyproj raises several types; the option is only a hint to PROJ
        return None
    values = (west, south, east, north)
    if not all(math.isfinite(v) for v in values):
        return None
    return (float(west), float(south), float(east), float(north))


#: Rows of a block of the warp's destination block grid (`warp_block_shape`).
WARP_BLOCK_ROWS = 128
#: Columns of a block when the output is wider than `WARP_WHOLE_ROW_WIDTH`.
WARP_BLOCK_COLS = 512
#: Outputs up to this many columns are warped in blocks as wide as the output.
WARP_WHOLE_ROW_WIDTH = 1024


def warp_block_shape(dst: GridSpec) -> tuple[int, int]:
    """``(rows, cols)`` of the block grid the destination is warped in; part of the warp.

    GDAL warps each block of this grid on its own, and its approximate transformer
    interpolates along each row of a block, so the block grid -- which depends only on the
    destination grid, never on the chunking -- is part of what defines the warp's pixels
    (see `pipeline.warp.engine`). Blocks are `WARP_BLOCK_ROWS` high and, for outputs at most
    `WARP_WHOLE_ROW_WIDTH` wide, as wide as the output: a tile warped whole then equals GDAL's
    own whole-tile warp (``rasterio.warp.reproject``, ``gdalwarp``) pixel for pixel. Wider
    outputs get `WARP_BLOCK_COLS`-wide blocks.
    """
    rows = min(dst.height, WARP_BLOCK_ROWS)
    cols = dst.width if dst.width <= WARP_WHOLE_ROW_WIDTH else WARP_BLOCK_COLS
    return rows, cols


def _pair(value: float | Sequence[float] | None, name: str) -> tuple[float, float] | None:
    if value is None:
        return None
    pair = (value, value) if isinstance(value, int | float) else tuple(value)
    if len(pair) == 1:
        pair = (pair[0], pair[0])
    if len(pair) != 2:
        raise ReprojectError(f"{name} must be one number or two (x, y), got {value!r}")
    try:
        out = (float(pair[0]), float(pair[1]))
    except (TypeError, ValueError) as err:
        raise ReprojectError(f"{name} must be numbers, got {value!r}") from err
    if not all(math.isfinite(v) and v > 0 for v in out):
        raise ReprojectError(f"{name} must be positive and finite, got {value!r}")
    return out


def _is_mercator(crs: CRS) -> bool:
    """True for (pseudo-)Mercator projections, whose y goes to infinity at the poles."""
    return _is_mercator_wkt(crs.to_wkt())


@functools.lru_cache(maxsize=64)
def _is_mercator_wkt(wkt: str) -> bool:
    """`_is_mercator` of a WKT, cached: it depends on the CRS alone."""
    op = ProjCRS.from_wkt(wkt).coordinate_operation
    if op is None:
        return False
    method = op.method_name.lower()
    return "mercator" in method and "transverse" not in method and "oblique" not in method


def _clamped_source(src: GridSpec, dst_crs: CRS) -> tuple[float, float, float, float, int, int]:
    """Source bounds and size for `calculate_default_transform`.

    For a Mercator destination and a geographic source reaching beyond
    +-`MERCATOR_MAX_LATITUDE`, the source extent is clamped to the valid latitude band (the
    pixel size is kept, so the clamped height may be fractional and is rounded).
    """
    left, bottom, right, top = src.bounds
    width, height = src.width, src.height
    if (
        src.is_rectilinear
        and src.crs.is_geographic
        and _is_mercator(dst_crs)
        and (top > MERCATOR_MAX_LATITUDE or bottom < -MERCATOR_MAX_LATITUDE)
    ):
        new_top = min(top, MERCATOR_MAX_LATITUDE)
        new_bottom = max(bottom, -MERCATOR_MAX_LATITUDE)
        if new_top <= new_bottom:
            raise ReprojectError(
                f"the source lies entirely beyond +-{MERCATOR_MAX_LATITUDE} degrees of "
                f"latitude, outside any Mercator grid"
            )
        height = max(1, round(height * (new_top - new_bottom) / (top - bottom)))
        top, bottom = new_top, new_bottom
    return left, bottom, right, top, width, height


def _default_grid(
    src: GridSpec,
    dst_crs: CRS,
    *,
    resolution: tuple[float, float] | None = None,
    shape: tuple[int, int] | None = None,
) -> tuple[Affine, int, int]:
    """`calculate_default_transform` for ``src`` (rotated sources go through corner GCPs)."""
    kwargs: dict[str, Any] = {}
    if resolution is not None:
        kwargs["resolution"] = resolution
    if shape is not None:
        kwargs["dst_height"], kwargs["dst_width"] = shape
    try:
        if src.is_rectilinear:
            left, bottom, right, top, width, height = _clamped_source(src, dst_crs)
            transform, w, h = calculate_default_transform(
                src.crs, dst_crs, width, height, left, bottom, right, top, **kwargs
            )
        else:
            from rasterio.control import GroundControlPoint

            corners = [(0, 0), (0, src.width), (src.height, 0), (src.height, src.width)]
            gcps = [
                GroundControlPoint(row, col, *(src.transform * (col, row))) for row, col in corners
            ]
            transform, w, h = calculate_default_transform(
                src.crs, dst_crs, src.width, src.height, gcps=gcps, **kwargs
            )
    except Exception as err:  # GDAL reports failures as several exception types
        raise ReprojectError(
            f"cannot compute a destination grid from {src.crs.to_string()!r} to "
            f"{dst_crs.to_string()!r}: {' '.join(str(err).split())}"
        ) from err
    if transform is None or not w or not h:
        raise ReprojectError(
            f"cannot compute a destination grid from {src.crs.to_string()!r} to "
            f"{dst_crs.to_string()!r}"
        )
    return Affine(*tuple(transform)[:6]), int(w), int(h)


def destination_grid(
    src: GridSpec,
    dst_crs: Any,
    *,
    resolution: float | Sequence[float] | None = None,
    bounds: Sequence[float] | None = None,
    shape: tuple[int, int] | None = None,
    target_aligned_pixels: bool = False,
) -> GridSpec:
    """The destination grid of a whole-raster warp, computed once.

    Parameters
    ----------
    src : GridSpec
        Source grid.
    dst_crs : CRS-like
        Destination CRS (anything `parse_crs` accepts).
    resolution : float or (float, float), optional
        Destination pixel size ``(x, y)`` in destination CRS units.
    bounds : (left, bottom, right, top), optional
        Destination extent in destination CRS units.
    shape : (height, width), optional
        Destination size in pixels (not with ``resolution``).
    target_aligned_pixels : bool, default False
        Align the extent to multiples of the resolution, like ``gdalwarp -tap`` (uses the
        default resolution when ``resolution`` is not given).

    Returns
    -------
    GridSpec
        By default exactly what `rasterio.warp.calculate_default_transform` (and so
        ``gdalwarp -t_srs``) chooses. With ``bounds`` the extent is kept and the size is
        ``round(extent / resolution)`` (as ``gdalwarp -te -tr``) or ``shape``. For a
        Mercator destination a geographic source is first clamped to +-85.0511 degrees.
    """
    crs = parse_crs(dst_crs)
    res = _pair(resolution, "resolution")
    if res is not None and shape is not None:
        raise ReprojectError("give resolution or shape, not both")
    if shape is not None:
        if len(shape) != 2 or any(int(v) != v or v < 1 for v in shape):
            raise ReprojectError(f"shape must be two positive integers (height, width): {shape!r}")
        shape = (int(shape[0]), int(shape[1]))
    if bounds is not None:
        if len(bounds) != 4 or not all(math.isfinite(float(v)) for v in bounds):
            raise ReprojectError(f"bounds must be four finite numbers, got {bounds!r}")
        left, bottom, right, top = (float(v) for v in bounds)
        if right <= left or top <= bottom:
            raise ReprojectError(
                f"bounds must be (left, bottom, right, top) with right > left and "
                f"top > bottom, got {tuple(bounds)!r}"
            )
        if shape is not None:
            height, width = shape
            transform = from_bounds(left, bottom, right, top, width, height)
        else:
            if res is None:
                default, _, _ = _default_grid(src, crs)
                res = (default.a, -default.e)
            width = max(1, int((right - left) / res[0] + 0.5))
            height = max(1, int((top - bottom) / res[1] + 0.5))
            transform = Affine(res[0], 0.0, left, 0.0, -res[1], top)
    else:
        transform, width, height = _default_grid(src, crs, resolution=res, shape=shape)
    if target_aligned_pixels:
        tap_res = res if res is not None else (transform.a, -transform.e)
        transform, width, height = aligned_target(transform, width, height, tap_res)
    return GridSpec(crs, Affine(*tuple(transform)[:6]), int(width), int(height))


def _transformer(src_crs: CRS, dst_crs: CRS) -> Transformer | None:
    """A pyproj transformer from the destination CRS to the source CRS (None: same CRS)."""
    if src_crs == dst_crs:
        return None
    return _cached_transformer(dst_crs.to_wkt(), src_crs.to_wkt(), threading.get_ident())


@functools.lru_cache(maxsize=64)
def _cached_transformer(from_wkt: str, to_wkt: str, thread: int) -> Transformer:
    """Transformers cost ~5 ms to build and a batch reuses one CRS pair for every tile; one per
    thread, as PROJ objects are not to be shared between threads."""
    return Transformer.from_crs(
        ProjCRS.from_wkt(from_wkt), ProjCRS.from_wkt(to_wkt), always_xy=True
    )


def _apply(t: Affine, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Affine ``t`` applied to coordinate arrays (new float64 arrays)."""
    x, y = np.asarray(x, dtype="f8"), np.asarray(y, dtype="f8")
    return t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f


def source_pixel_coords(
    src: GridSpec,
    dst: GridSpec,
    cols: np.ndarray,
    rows: np.ndarray,
    *,
    transformer: Transformer | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Map destination pixel coordinates to source pixel coordinates (NaN where that fails)."""
    xs, ys = _apply(dst.transform, cols, rows)
    if transformer is None and src.crs != dst.crs:
        transformer = _transformer(src.crs, dst.crs)
    if transformer is not None:
        xs, ys = transformer.transform(xs, ys, errcheck=False)
    c, r = _apply(~src.transform, xs, ys)
    bad = ~(np.isfinite(c) & np.isfinite(r))
    c[bad] = np.nan
    r[bad] = np.nan
    return c, r


def _edge_points(
    row0: float, col0: float, height: float, width: float, n: int = EDGE_SAMPLES
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points along each edge of a rectangle in pixel-edge coordinates (GDAL's order)."""
    t = np.arange(n, dtype="f8") / (n - 1)
    cols = np.concatenate(
        [col0 + t * width, col0 + t * width, np.full(n, col0), np.full(n, col0 + width)]
    )
    rows = np.concatenate(
        [np.full(n, row0), np.full(n, row0 + height), row0 + t * height, row0 + t * height]
    )
    return cols, rows


def _grid_points(
    row0: float, col0: float, height: float, width: float, n: int = EDGE_SAMPLES
) -> tuple[np.ndarray, np.ndarray]:
    """GDAL's ``SAMPLE_GRID`` pattern: ``n + 2`` points per axis, half a pixel in at the ends."""
    ty = np.concatenate([[0.5 / height], np.arange(n) / (n - 1), [1 - 0.5 / height]])
    tx = np.concatenate([[0.5 / width], np.arange(n) / (n - 1), [1 - 0.5 / width]])
    gy, gx = np.meshgrid(ty, tx, indexing="ij")
    return (col0 + gx * width).ravel(), (row0 + gy * height).ravel()


def _snap_reciprocal(scale: float) -> float:
    """GDAL's kernel rounds a downsampling scale to ``1/n`` when within 0.05 of it."""
    if scale < 1.0:
        reciprocal = 1.0 / scale
        n = int(reciprocal + 0.5)
        if n >= 1 and abs(reciprocal - n) < 0.05:
            return 1.0 / n
    return scale


def warp_scale(src: GridSpec, dst: GridSpec) -> tuple[float, float]:
    """The ``(XSCALE, YSCALE)`` GDAL's warper computes for one warp of the whole raster.

    Mirrors ``GDALWarpOperation::ComputeSourceWindow`` (21 samples along each destination
    edge, grid sampling if any fail, near-integer rounding, clamping to the source) and the
    kernel's ``dst size / source size`` ratio with its snapping to ``1/n``. Passing the
    result as the XSCALE/YSCALE warp options gives every chunk the kernel footprint of the
    whole-raster warp (GDAL otherwise derives it per chunk, which leaves seams).

    Returns
    -------
    (float, float)
        Destination pixels per source pixel along x and y (1.0 when undefined).
    """
    transformer = _transformer(src.crs, dst.crs)
    c, r = source_pixel_coords(
        src, dst, *_edge_points(0, 0, dst.height, dst.width), transformer=transformer
    )
    if np.isnan(c).any():
        c, r = source_pixel_coords(
            src, dst, *_grid_points(0, 0, dst.height, dst.width), transformer=transformer
        )
    ok = ~np.isnan(c)
    if ok.sum() < 2:
        return (1.0, 1.0)

    def close_round(v: float) -> float:
        rounded = float(round(v))
        return rounded if abs(rounded - v) < 1e-6 else v

    min_x, max_x = close_round(float(c[ok].min())), close_round(float(c[ok].max()))
    min_y, max_y = close_round(float(r[ok].min())), close_round(float(r[ok].max()))
    raw_x = max(0.0, min(src.width - int(max(0.0, min_x)), max_x - min_x))
    raw_y = max(0.0, min(src.height - int(max(0.0, min_y)), max_y - min_y))
    scale_x = dst.width / raw_x if raw_x > 0 else 1.0
    scale_y = dst.height / raw_y if raw_y > 0 else 1.0
    return (_snap_reciprocal(scale_x), _snap_reciprocal(scale_y))


def kernel_halo(resampling: str, xscale: float, yscale: float) -> tuple[int, int]:
    """Source pixels ``(rows, cols)`` to add around a footprint for ``resampling``.

    The kernel radius grows by ``1 / scale`` when downsampling (as in GDAL's warper), plus
    `SAFETY_PIXELS`.
    """
    radius = METHODS[resampling_name(resampling)].radius
    hy = math.ceil(radius / min(yscale, 1.0)) + SAFETY_PIXELS
    hx = math.ceil(radius / min(xscale, 1.0)) + SAFETY_PIXELS
    return hy, hx


@dataclass(frozen=True)
class Window:
    """Half-open pixel window ``[row0, row1) x [col0, col1)``."""

    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``."""
        return (self.row1 - self.row0, self.col1 - self.col0)


def _offsets(chunks: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(chunks)]).astype(int)


def source_windows(
    src: GridSpec,
    dst: GridSpec,
    chunks: tuple[Sequence[int], Sequence[int]],
    *,
    halo: tuple[int, int],
    samples: int = EDGE_SAMPLES,
) -> list[list[Window | None]]:
    """The source window each destination chunk needs, or None when it needs nothing.

    Parameters
    ----------
    src, dst : GridSpec
        Source and destination grids.
    chunks : (y chunks, x chunks)
        Destination chunk sizes along each axis (dask style).
    halo : (int, int)
        Source pixels ``(rows, cols)`` added on every side (`kernel_halo`).
    samples : int
        Points per chunk edge; all edges of all chunks are transformed in one call.

    Returns
    -------
    list of list of Window or None
        ``windows[i][j]`` for destination chunk ``(i, j)``: the bounding box of its densified
        edges in source pixels, padded by ``halo`` and clipped to the source; None when that
        is empty (a fill-only chunk). If some edge points fail to transform, the chunk is
        sampled on a grid and padded by 10 more pixels (GDAL's own fallback).
    """
    ys, xs = _offsets(chunks[0]), _offsets(chunks[1])
    ny, nx = len(ys) - 1, len(xs) - 1
    per_chunk = 4 * samples
    cols = np.empty((ny, nx, per_chunk))
    rows = np.empty((ny, nx, per_chunk))
    for i in range(ny):
        for j in range(nx):
            c, r = _edge_points(ys[i], xs[j], ys[i + 1] - ys[i], xs[j + 1] - xs[j], samples)
            cols[i, j], rows[i, j] = c, r
    transformer = _transformer(src.crs, dst.crs)
    sc, sr = source_pixel_coords(src, dst, cols.ravel(), rows.ravel(), transformer=transformer)
    sc, sr = sc.reshape(ny, nx, per_chunk), sr.reshape(ny, nx, per_chunk)
    hy, hx = halo
    out: list[list[Window | None]] = []
    for i in range(ny):
        row_out: list[Window | None] = []
        for j in range(nx):
            c, r = sc[i, j], sr[i, j]
            extra = 0
            if np.isnan(c).any():
                c, r = source_pixel_coords(
                    src,
                    dst,
                    *_grid_points(ys[i], xs[j], ys[i + 1] - ys[i], xs[j + 1] - xs[j], samples),
                    transformer=transformer,
                )
                extra = 10
            ok = ~np.isnan(c)
            if not ok.any():
                row_out.append(None)
                continue
            row0 = max(0, math.floor(r[ok].min()) - hy - extra)
            row1 = min(src.height, math.ceil(r[ok].max()) + hy + extra)
            col0 = max(0, math.floor(c[ok].min()) - hx - extra)
            col1 = min(src.width, math.ceil(c[ok].max()) + hx + extra)
            row_out.append(Window(row0, row1, col0, col1) if row1 > row0 and col1 > col0 else None)
        out.append(row_out)
    return out


def pixel_center_coords(grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(y, x)`` coordinates of pixel centres of a rectilinear grid, as rioxarray sets them."""
    t = grid.transform
    x = t.c + t.a * (np.arange(grid.width) + 0.5)
    y = t.f + t.e * (np.arange(grid.height) + 0.5)
    return y, x
