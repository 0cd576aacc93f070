"""Synthetic elevation models for kernel tests, benchmarks and notebooks (deterministic)."""

from __future__ import annotations

from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from rasterio.transform import from_origin


def synthetic_dem(
    height: int, width: int, *, seed: int = 0, dtype: str = "float32", scale: float = 1.0
) -> np.ndarray:
    """A ``(1, height, width)`` terrain-like DEM in metres: hills, a valley, a ridge and noise.

    Values lie roughly between 0 and 1500 m times ``scale`` (integer dtypes are rounded).
    Neighbouring pixels differ, so no two windows see the same numbers by accident.
    """
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height)[:, None]
    x = np.linspace(0.0, 1.0, width)[None, :]
    z = 400.0 + 300.0 * np.sin(3.0 * np.pi * x) * np.cos(2.0 * np.pi * y)
    for _ in range(6):
        cy, cx = rng.uniform(0.0, 1.0, 2)
        r = rng.uniform(0.05, 0.25)
        z += rng.uniform(150.0, 600.0) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    z -= 250.0 * np.exp(-((x - 0.5 * y - 0.3) ** 2) / 0.005)  # a valley
    z += 60.0 * np.abs(np.sin(9.0 * np.pi * (x + y)))  # ridges: sharp breaks of slope
    z += rng.normal(0.0, 2.0, size=(height, width))
    z *= scale
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        z = np.clip(np.rint(z), info.min, info.max)
    return z.astype(dt)[None]


def plane(height: int, width: int, *, a: float, b: float, res: float = 1.0) -> np.ndarray:
    """``z = a * x + b * y`` (x eastwards, y northwards, metres) sampled at pixel centres."""
    rows = np.arange(height, dtype=np.float64)[:, None]
    cols = np.arange(width, dtype=np.float64)[None, :]
    x = (cols + 0.5) * res
    y = -(rows + 0.5) * res  # row 0 is the northernmost row
    return (a * x + b * y)[None]


def cone(height: int, width: int, *, grade: float, res: float = 1.0) -> np.ndarray:
    """A cone with its apex at the raster centre: ``z = grade * (r_max - r)``.

    ``r`` is the distance in metres from the centre and ``r_max`` its largest value, so
    ``z >= 0``; slope is ``atan(grade)`` and aspect points away from the centre.
    """
    rows = np.arange(height, dtype=np.float64)[:, None]
    cols = np.arange(width, dtype=np.float64)[None, :]
    dy = (rows + 0.5 - height / 2.0) * res
    dx = (cols + 0.5 - width / 2.0) * res
    r = np.hypot(dx, dy)
    return (grade * (r.max() - r))[None]


def georeferenced(
    data: np.ndarray,
    *,
    crs: Any = "EPSG:32633",
    origin: tuple[float, float] = (500000.0, 5000000.0),
    resolution: float | tuple[float, float] = 30.0,
    nodata: Any = None,
) -> xr.DataArray:
    """``data`` (band, y, x) as an in-memory DataArray with CRS, transform and nodata."""
    xres, yres = resolution if isinstance(resolution, tuple) else (resolution, resolution)
    transform = from_origin(origin[0], origin[1], xres, yres)
    nb, ny, nx = data.shape
    xs = origin[0] + (np.arange(nx) + 0.5) * xres
    ys = origin[1] - (np.arange(ny) + 0.5) * yres
    da = xr.DataArray(
        data, dims=("band", "y", "x"), coords={"band": np.arange(1, nb + 1), "y": ys, "x": xs}
    )
    da = da.rio.write_crs(crs).rio.write_transform(transform)
    if nodata is not None:
        da = da.rio.write_nodata(nodata, encoded=False)
    return da
