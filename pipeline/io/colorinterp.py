"""Band colour interpretation (red, green, blue, alpha...) carried from input to output.

GDAL keeps it inside the GeoTIFF (no ``.aux.xml`` beside it; tested). A new GeoTIFF of 3 uint8
bands is RGB by default and a uint16 one gray/undefined, so without this a uint16 RGB or BGRA
image would lose its interpretation and a uint8 false-colour composite would be relabelled
RGB; ``gdalwarp`` keeps it, ``rio warp`` does not.

`open_raster` records the selected bands' interpretation in ``encoding["colorinterp"]`` when
it says more than gray/undefined; `reproject` keeps the encoding, `apply_kernel` drops it
(a kernel changes what the bands are); `write_raster` and batch mode write it back. Palette
bands are left to `pipeline.io.colormap`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import rasterio
from rasterio.enums import ColorInterp

#: Encoding key holding one colour interpretation name per band (``ColorInterp`` names).
COLORINTERP_KEY = "colorinterp"
_PLAIN = frozenset({"gray", "undefined"})


def read_colorinterp(ds: Any, indexes: Sequence[int] | None = None) -> tuple[str, ...] | None:
    """Colour interpretation names of ``indexes`` (default: all bands) of an open dataset.

    None when there is nothing to carry: every band is gray or undefined, or one is a palette
    band (its colour table is carried by `pipeline.io.colormap`).
    """
    interp = ds.colorinterp
    names = tuple(interp[i - 1].name for i in (indexes or range(1, ds.count + 1)))
    if all(n in _PLAIN for n in names) or "palette" in names:
        return None
    return names


def apply_colorinterp(ds: Any, names: Sequence[str] | None) -> bool:
    """Set ``names`` on a dataset open for writing; False (nothing set) if they do not fit it.

    They fit when there is one name per band, all valid `rasterio.enums.ColorInterp` names.
    """
    if not names or len(names) != ds.count or any(n not in ColorInterp.__members__ for n in names):
        return False
    ds.colorinterp = [ColorInterp[n] for n in names]
    return True


def write_colorinterp(path: str, names: Sequence[str] | None, count: int) -> bool:
    """`apply_colorinterp` on the GeoTIFF at ``path``, opened only when ``names`` fit."""
    if not names or len(names) != count:
        return False
    with rasterio.open(path, "r+") as ds:
        return apply_colorinterp(ds, names)
