"""Pixel size in metres for each raster row, from the affine transform and the CRS (no I/O).

Projected CRSs: the pixel size in the CRS's linear unit, converted to metres (US survey feet
and the like), the same for every row. Geographic CRSs: degrees are converted to metres on
the CRS's ellipsoid at the latitude of each row's centre (meridional radius of curvature for
the pixel height, prime-vertical radius times cos(latitude) for the width), so terrain kernels
stay right across large north-south extents and the result does not depend on the chunking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import KernelError

# WGS 84, used when a geographic CRS does not say which ellipsoid it uses.
_WGS84_A = 6378137.0
_WGS84_INVF = 298.257223563


@dataclass(frozen=True)
class RowCellsize:
    """Pixel width and height in metres for each row of a north-up raster.

    Attributes
    ----------
    xres, yres : float
        Pixel width and height in CRS units (absolute values of the transform's ``a``, ``e``).
    y0, dy : float
        Centre of row ``r`` is at ``y0 + r * dy`` in CRS units (``dy`` is the transform's
        ``e``; latitude for geographic CRSs).
    geographic : bool
        Units are degrees on the ellipsoid ``(semi_major, eccentricity**2)``.
    unit_factor : float
        Metres per CRS unit (projected CRSs).
    """

    xres: float
    yres: float
    y0: float
    dy: float
    geographic: bool = False
    semi_major: float = _WGS84_A
    ecc2: float = 0.0
    unit_factor: float = 1.0

    def rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixel width and height in metres (float64 arrays) for rows ``start..stop-1``.

        Rows outside the raster are extrapolated (latitudes clipped to +-90 degrees).
        """
        n = stop - start
        if not self.geographic:
            return (
                np.full(n, self.xres * self.unit_factor),
                np.full(n, self.yres * self.unit_factor),
            )
        lat = self.y0 + np.arange(start, stop, dtype=np.float64) * self.dy
        phi = np.radians(np.clip(lat, -90.0, 90.0))
        w = 1.0 - self.ecc2 * np.sin(phi) ** 2
        meridional = self.semi_major * (1.0 - self.ecc2) / w**1.5
        prime_vertical = self.semi_major / np.sqrt(w)
        rad_x = math.radians(self.xres)
        rad_y = math.radians(self.yres)
        return prime_vertical * np.cos(phi) * rad_x, meridional * rad_y


def row_cellsize(transform: Any, crs: Any) -> RowCellsize:
    """The `RowCellsize` of a raster with this affine ``transform`` and rasterio ``crs``.

    Parameters
    ----------
    transform : affine.Affine
        North-up pixel-to-CRS transform (no rotation or shear).
    crs : rasterio.crs.CRS or None
        None: units are taken as metres.

    Raises
    ------
    KernelError
        Rotated or sheared transforms, or zero pixel size.
    """
    a, b, _, d, e, f = (float(v) for v in tuple(transform)[:6])
    if b != 0.0 or d != 0.0:
        raise KernelError(
            f"kernels that need the pixel size support north-up rasters only; the transform "
            f"is rotated or sheared ({tuple(transform)[:6]!r}); reproject the raster first"
        )
    if a == 0.0 or e == 0.0:
        raise KernelError(f"the transform has a zero pixel size ({tuple(transform)[:6]!r})")
    y0 = f + 0.5 * e
    if crs is not None and crs.is_geographic:
        semi_major, ecc2 = _ellipsoid(crs)
        return RowCellsize(abs(a), abs(e), y0, e, True, semi_major, ecc2)
    factor = 1.0
    if crs is not None:
        try:
            factor = float(crs.linear_units_factor[1])
        except Exception:  # CRS without a linear unit (engineering, unknown): take metres
            factor = 1.0
    return RowCellsize(abs(a), abs(e), y0, e, False, unit_factor=factor)


def _ellipsoid(crs: Any) -> tuple[float, float]:
    """Semi-major axis (m) and first eccentricity squared of a geographic CRS."""
    try:
        from pyproj import CRS as ProjCRS

        ellps = ProjCRS.from_user_input(crs.to_wkt()).ellipsoid
    except Exception:
        ellps = None
    if ellps is None:
        a, invf = _WGS84_A, _WGS84_INVF
    else:
        a, invf = float(ellps.semi_major_metre), float(ellps.inverse_flattening)
    flattening = 1.0 / invf if invf else 0.0
    return a, flattening * (2.0 - flattening)
