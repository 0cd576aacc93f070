"""Terrain kernels from a DEM with Horn's (1981) 3 x 3 gradient: ``slope``, ``aspect``,
``hillshade``.

For the window ``a b c / d e f / g h i`` (north row first) the gradient is
``dz/dx = ((c + 2f + i) - (a + 2d + g)) / (8 dx)`` (eastwards) and
``dz/dy = ((g + 2h + i) - (a + 2b + c)) / (8 dy)`` (southwards), as in GDAL's ``gdaldem`` and
xarray-spatial. ``dx`` and ``dy`` are the pixel width and height in metres of the centre
pixel's row (`pipeline.kernels.cellsize`: per-row on geographic CRSs); elevations are taken as
metres (use ``z_factor`` otherwise).

Nodata: a nodata centre gives nodata. A neighbour that is nodata or beyond the raster edge is
replaced by the centre value (GDAL's ``-compute_edges`` rule), so edge pixels get a value and
results do not depend on the chunking.

- ``slope``: degrees from horizontal, 0-90 (float32, nodata NaN).
- ``aspect``: direction the slope faces, degrees clockwise from north in [0, 360); flat
  pixels (zero gradient) are ``-1`` as in ArcGIS (float32, nodata NaN).
- ``hillshade``: GDAL's formula, ``1 + 254 * cos(angle to the sun)`` rounded to uint8 with
  shadows at 1 and nodata 0, for a sun at ``azimuth`` degrees clockwise from north and
  ``altitude`` degrees above the horizon.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pipeline.errors import KernelError
from pipeline.kernels._numba import nogil_kernel
from pipeline.kernels.params import check_number
from pipeline.kernels.registry import KernelSpec, register_kernel

#: Aspect of pixels with a zero gradient.
FLAT = -1.0


@nogil_kernel
def _at(src, valid, b, r, c, centre):
    """Elevation at (r, c), or the centre's where it is nodata or beyond the edge."""
    return np.float64(src[b, r, c]) if valid[b, r, c] else centre


@nogil_kernel
def horn_gradient(src, valid, b, r, c, dx, dy):
    """(dz/dx eastwards, dz/dy southwards) at (r, c) of band b, which must be valid."""
    e = np.float64(src[b, r, c])
    a = _at(src, valid, b, r - 1, c - 1, e)
    n = _at(src, valid, b, r - 1, c, e)
    ne = _at(src, valid, b, r - 1, c + 1, e)
    w = _at(src, valid, b, r, c - 1, e)
    east = _at(src, valid, b, r, c + 1, e)
    g = _at(src, valid, b, r + 1, c - 1, e)
    s = _at(src, valid, b, r + 1, c, e)
    i = _at(src, valid, b, r + 1, c + 1, e)
    gx = ((ne + 2.0 * east + i) - (a + 2.0 * w + g)) / (8.0 * dx)
    gy = ((g + 2.0 * s + i) - (a + 2.0 * n + ne)) / (8.0 * dy)
    return gx, gy


@nogil_kernel
def _slope_core(src, valid, dx_rows, dy_rows, z, out_nodata, out):
    nb, ny, nx = out.shape
    for b in range(nb):
        for r in range(ny):
            dx, dy = dx_rows[r + 1], dy_rows[r + 1]
            for c in range(nx):
                if not valid[b, r + 1, c + 1]:
                    out[b, r, c] = out_nodata
                    continue
                gx, gy = horn_gradient(src, valid, b, r + 1, c + 1, dx, dy)
                out[b, r, c] = math.degrees(math.atan(z * math.sqrt(gx * gx + gy * gy)))


@nogil_kernel
def _aspect_core(src, valid, dx_rows, dy_rows, flat, out_nodata, out):
    nb, ny, nx = out.shape
    for b in range(nb):
        for r in range(ny):
            dx, dy = dx_rows[r + 1], dy_rows[r + 1]
            for c in range(nx):
                if not valid[b, r + 1, c + 1]:
                    out[b, r, c] = out_nodata
                    continue
                gx, gy = horn_gradient(src, valid, b, r + 1, c + 1, dx, dy)
                if gx == 0.0 and gy == 0.0:
                    out[b, r, c] = flat
                    continue
                # Downslope direction (-dz/dx east, dz/dy south = -dz/dnorth) as a compass angle.
                deg = math.degrees(math.atan2(-gx, gy))
                if deg < 0.0:
                    deg += 360.0
                out[b, r, c] = deg
                if out[b, r, c] >= 360.0:  # -1e-9 + 360 rounds to 360 in float32
                    out[b, r, c] = 0.0


@nogil_kernel
def _hillshade_core(src, valid, dx_rows, dy_rows, sin_alt, cos_alt, sin_az, cos_az, z, out):
    nb, ny, nx = out.shape
    for b in range(nb):
        for r in range(ny):
            dx, dy = dx_rows[r + 1], dy_rows[r + 1]
            for c in range(nx):
                if not valid[b, r + 1, c + 1]:
                    out[b, r, c] = 0
                    continue
                gx, gy = horn_gradient(src, valid, b, r + 1, c + 1, dx, dy)
                cang = (sin_alt + z * cos_alt * (gy * cos_az - gx * sin_az)) / math.sqrt(
                    1.0 + z * z * (gx * gx + gy * gy)
                )
                shade = 1.0 if cang <= 0.0 else min(1.0 + 254.0 * cang, 255.0)
                out[b, r, c] = math.floor(shade + 0.5)


def _out(block: np.ndarray, dtype: Any) -> np.ndarray:
    nb, ny, nx = block.shape
    return np.empty((nb, ny - 2, nx - 2), dtype=dtype)


def _f64(block: np.ndarray) -> np.ndarray:
    """Elevations as float64: the loops compile once, whatever the DEM's dtype."""
    return np.asarray(block, dtype=np.float64)


def slope(
    block: np.ndarray,
    *,
    z_factor: float = 1.0,
    valid: np.ndarray,
    cellsize: tuple[np.ndarray, np.ndarray],
    out_nodata: Any,
) -> np.ndarray:
    """Slope in degrees (Horn) of a DEM block that carries a 1-pixel halo.

    Parameters
    ----------
    block : ndarray
        ``(band, y + 2, x + 2)`` elevations in metres (any numeric dtype).
    z_factor : float, default 1.0
        Multiplies elevations first (e.g. 0.3048 for feet).
    valid, cellsize, out_nodata
        Context from `apply_kernel` (see `KernelSpec`).

    Returns
    -------
    ndarray
        ``(band, y, x)`` float32, 0-90; ``out_nodata`` where the centre is invalid.
    """
    out = _out(block, np.float32)
    _slope_core(_f64(block), valid, cellsize[0], cellsize[1], float(z_factor), out_nodata, out)
    return out


def aspect(
    block: np.ndarray,
    *,
    valid: np.ndarray,
    cellsize: tuple[np.ndarray, np.ndarray],
    out_nodata: Any,
) -> np.ndarray:
    """Aspect (Horn) of a DEM block that carries a 1-pixel halo.

    Parameters
    ----------
    block : ndarray
        ``(band, y + 2, x + 2)`` elevations (any numeric dtype).
    valid, cellsize, out_nodata
        Context from `apply_kernel` (see `KernelSpec`).

    Returns
    -------
    ndarray
        ``(band, y, x)`` float32: degrees clockwise from north in [0, 360), `FLAT` (-1) for
        a zero gradient, ``out_nodata`` where the centre is invalid.
    """
    out = _out(block, np.float32)
    _aspect_core(_f64(block), valid, cellsize[0], cellsize[1], FLAT, out_nodata, out)
    return out


def hillshade(
    block: np.ndarray,
    *,
    azimuth: float = 315.0,
    altitude: float = 45.0,
    z_factor: float = 1.0,
    valid: np.ndarray,
    cellsize: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """GDAL's hillshade of a DEM block that carries a 1-pixel halo.

    Parameters
    ----------
    block : ndarray
        ``(band, y + 2, x + 2)`` elevations in metres (any numeric dtype).
    azimuth : float, default 315.0
        Direction of the sun, degrees clockwise from north.
    altitude : float, default 45.0
        Height of the sun above the horizon, degrees (0-90).
    z_factor : float, default 1.0
        Multiplies elevations first.
    valid, cellsize
        Context from `apply_kernel` (see `KernelSpec`).

    Returns
    -------
    ndarray
        ``(band, y, x)`` uint8: ``round(1 + 254 * cos(angle to the sun))``, 1 in shadow, 0
        (nodata) where the centre is invalid.
    """
    out = _out(block, np.uint8)
    alt, az = math.radians(altitude), math.radians(azimuth)
    _hillshade_core(
        _f64(block),
        valid,
        cellsize[0],
        cellsize[1],
        math.sin(alt),
        math.cos(alt),
        math.sin(az),
        math.cos(az),
        float(z_factor),
        out,
    )
    return out


def _validate_z(params: dict[str, Any], name: str) -> dict[str, Any]:
    z = check_number(name, "z_factor", params["z_factor"])
    if z <= 0.0:
        raise KernelError(f"kernel {name!r}: z_factor must be > 0, got {params['z_factor']!r}")
    params["z_factor"] = z
    return params


def _validate_slope(params: dict[str, Any], n_bands: int) -> dict[str, Any]:
    return _validate_z(params, "slope")


def _validate_hillshade(params: dict[str, Any], n_bands: int) -> dict[str, Any]:
    params["azimuth"] = check_number("hillshade", "azimuth", params["azimuth"]) % 360.0
    params["altitude"] = check_number(
        "hillshade", "altitude", params["altitude"], low=0.0, high=90.0
    )
    return _validate_z(params, "hillshade")


_COMMON: dict[str, Any] = {"depth": 1, "nodata": "kernel", "releases_gil": True}

SLOPE = register_kernel(
    KernelSpec(
        name="slope",
        func=slope,
        description="slope in degrees (Horn's method; float32, nodata NaN)",
        output_dtype=np.float32,
        params={"z_factor": 1.0},
        output_nodata=math.nan,
        validate=_validate_slope,
        units="degrees",
        **_COMMON,
    )
)

ASPECT = register_kernel(
    KernelSpec(
        name="aspect",
        func=aspect,
        description="aspect in degrees clockwise from north, flat = -1 (Horn; float32, NaN)",
        output_dtype=np.float32,
        output_nodata=math.nan,
        units="degrees",
        **_COMMON,
    )
)

HILLSHADE = register_kernel(
    KernelSpec(
        name="hillshade",
        func=hillshade,
        description="GDAL hillshade for a sun at azimuth/altitude degrees (uint8 1-255, nodata 0)",
        output_dtype=np.uint8,
        params={"azimuth": 315.0, "altitude": 45.0, "z_factor": 1.0},
        output_nodata=0,
        validate=_validate_hillshade,
        units="",
        **_COMMON,
    )
)
