"""Deterministic synthetic rasters for tests, notebooks, benchmarks and the demo."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin


def synthetic_array(
    bands: int, height: int, width: int, *, dtype: str = "uint8", seed: int = 0
) -> np.ndarray:
    """A landscape-like ``(band, y, x)`` array: smooth relief, per-band contrast and noise.

    Deterministic for a given seed; values span the dtype's useful range (0-255 for uint8).
    """
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 6.0 * np.pi, height, dtype=np.float64)[:, None]
    x = np.linspace(0.0, 6.0 * np.pi, width, dtype=np.float64)[None, :]
    relief = np.sin(y) * np.cos(0.7 * x) + 0.5 * np.sin(0.3 * x + 0.2 * y)
    out = np.empty((bands, height, width), dtype=np.float64)
    for b in range(bands):
        noise = rng.normal(0.0, 0.08, size=(height, width))
        out[b] = (relief * (1.0 - 0.15 * b) + noise + 1.6) / 3.2
    np.clip(out, 0.0, 1.0, out=out)
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        hi = min(info.max, 255 if dt.itemsize == 1 else 10000)
        lo = max(info.min, 0)
        return (lo + out * (hi - lo)).astype(dt)
    return (out * 1000.0).astype(dt)


def write_synthetic_raster(
    path: str | os.PathLike[str],
    *,
    bands: int = 3,
    height: int = 1024,
    width: int = 1024,
    dtype: str = "uint8",
    block: int | None = 512,
    crs: str = "EPSG:32618",
    origin: tuple[float, float] = (500000.0, 4500000.0),
    resolution: float = 30.0,
    nodata: float | None = None,
    compress: str | None = "deflate",
    seed: int = 0,
    data: np.ndarray | None = None,
) -> str:
    """Write a georeferenced synthetic GeoTIFF and return its path.

    ``block=None`` writes a striped (untiled) file; otherwise square tiles of ``block`` pixels.
    """
    arr = (
        data if data is not None else synthetic_array(bands, height, width, dtype=dtype, seed=seed)
    )
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "count": arr.shape[0],
        "height": arr.shape[1],
        "width": arr.shape[2],
        "dtype": arr.dtype.name,
        "crs": CRS.from_user_input(crs),
        "transform": from_origin(origin[0], origin[1], resolution, resolution),
        "nodata": nodata,
    }
    if compress:
        profile["compress"] = compress
    if block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
    return os.fspath(path)
