"""Colour tables (palettes) of single-band class rasters, carried from input to output.

`open_raster` records a band's colour table in ``encoding["colormap"]``; `reproject` keeps
the encoding (resampled values are still source values for nearest, mode and the like, and
``gdalwarp`` keeps the table too); `apply_kernel` drops it, since a kernel changes what the
values mean. `write_raster` and batch mode write it back when the output is one band of a
dtype TIFF palettes allow (uint8, uint16).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import rasterio

#: Encoding key holding ``{value: (r, g, b, a)}``.
COLORMAP_KEY = "colormap"
_PALETTE_DTYPES = frozenset({"uint8", "uint16"})

Colormap = dict[int, tuple[int, int, int, int]]


def palette_allowed(count: int, dtype: Any) -> bool:
    """True if a GeoTIFF of ``count`` bands of ``dtype`` can hold a colour table."""
    return count == 1 and np.dtype(dtype).name in _PALETTE_DTYPES


def read_colormap(ds: Any, band: int = 1) -> Colormap | None:
    """The colour table of ``band`` of an open rasterio dataset, or None if it has none."""
    if not palette_allowed(1, ds.dtypes[band - 1]):
        return None
    try:
        table = ds.colormap(band)
    except ValueError:  # rasterio: "NULL color table"
        return None
    return {int(k): tuple(int(c) for c in v) for k, v in table.items()}  # type: ignore[misc]


def apply_colormap(ds: Any, colormap: Mapping[int, Any] | None) -> bool:
    """Write ``colormap`` to band 1 of a dataset open for writing; False if it cannot hold one."""
    if not colormap or not palette_allowed(ds.count, ds.dtypes[0]):
        return False
    ds.write_colormap(1, dict(colormap))
    return True


def write_colormap(path: str, colormap: Mapping[int, Any] | None, count: int, dtype: Any) -> bool:
    """`apply_colormap` on the GeoTIFF at ``path``, opened only when there is a table to write."""
    if not colormap or not palette_allowed(count, dtype):
        return False
    with rasterio.open(path, "r+") as ds:
        return apply_colormap(ds, colormap)
