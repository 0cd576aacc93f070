"""GeoTIFF metadata carried to every output: tags, band descriptions, colour table and colour
interpretation, written the same way by `write_raster` and batch mode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rasterio

from pipeline.io.colorinterp import apply_colorinterp
from pipeline.io.colormap import apply_colormap, palette_allowed

#: Tags GDAL computes from the pixels; they describe the input, not the (warped) output.
STATISTICS_PREFIX = "STATISTICS_"


@dataclass(frozen=True)
class RasterMetadata:
    """What an output GeoTIFF gets besides its pixels and georeferencing.

    ``tags=None`` and empty ``descriptions`` leave those alone (rioxarray writes them for
    `write_raster`); a colour table or interpretation that does not fit the file is skipped.
    """

    tags: Mapping[str, str] | None = None
    descriptions: Sequence[str | None] = ()
    colormap: Mapping[int, Any] | None = None
    colorinterp: Sequence[str] | None = None


def apply_metadata(ds: Any, meta: RasterMetadata) -> None:
    """Write ``meta`` to a rasterio dataset open for writing.

    Parameters
    ----------
    ds : rasterio dataset
        Open in ``"w"`` or ``"r+"`` mode.
    meta : RasterMetadata
        Tags (``STATISTICS_*`` left out), band descriptions (empty ones left out), colour table
        (band 1 of a one-band uint8/uint16 file only) and colour interpretation (one name per
        band only).
    """
    if meta.tags is not None:
        ds.update_tags(
            **{k: v for k, v in meta.tags.items() if not k.startswith(STATISTICS_PREFIX)}
        )
    for i, text in enumerate(meta.descriptions, start=1):
        if text:
            ds.set_band_description(i, text)
    apply_colormap(ds, meta.colormap)
    apply_colorinterp(ds, meta.colorinterp)


def write_metadata(path: str, meta: RasterMetadata, *, count: int, dtype: Any) -> bool:
    """`apply_metadata` on the GeoTIFF at ``path`` (``count`` bands of ``dtype``).

    The file is opened only when something in ``meta`` applies to it; returns whether it was.
    """
    applies = (
        meta.tags is not None
        or any(meta.descriptions)
        or bool(meta.colormap and palette_allowed(count, dtype))
        or bool(meta.colorinterp and len(meta.colorinterp) == count)
    )
    if not applies:
        return False
    with rasterio.open(path, "r+") as ds:
        apply_metadata(ds, meta)
    return True
