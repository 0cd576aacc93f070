"""GeoTIFF creation options shared by `write_raster`, batch mode and the COG step.

Kept apart from `pipeline.io.write` and `pipeline.io.cog` so both (and `pipeline.io.staged`)
import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline import config
from pipeline.errors import OutputError

#: Compressions that take a TIFF predictor.
_PREDICTED = frozenset({"deflate", "lzw", "zstd", "lzma"})


def default_predictor(dtype: np.dtype[Any], compress: str | None) -> int | None:
    """3 (floating point) for float data, 2 (horizontal) for integers, None without a
    compression that takes a predictor."""
    if not compress or compress.lower() not in _PREDICTED:
        return None
    if dtype.kind == "f" and dtype.itemsize in (2, 4, 8):
        return 3
    if dtype.kind in "iu":
        return 2
    return None


def creation_profile(
    dtype: np.dtype[Any],
    *,
    compress: str | None = None,
    predictor: int | None = None,
    creation_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """GeoTIFF creation options every output gets.

    Parameters
    ----------
    dtype : numpy.dtype
        Data type of the output (chooses the predictor).
    compress : str, optional
        Compression (default ``pipeline.write.compress``); a ``COMPRESS`` creation option wins.
    predictor : int, optional
        TIFF predictor; default one suited to ``dtype`` when the compression takes one.
    creation_options : mapping, optional
        Extra GDAL creation options (names in any case); they override the defaults.

    Returns
    -------
    dict
        Upper-case GDAL creation options with ``COMPRESS``, ``BIGTIFF`` (from
        ``pipeline.write.bigtiff``) and, where it applies, ``PREDICTOR``.
    """
    extra = {k.upper(): v for k, v in (creation_options or {}).items()}
    compress = str(extra.pop("COMPRESS", None) or compress or config.get("write.compress"))
    options: dict[str, Any] = {"COMPRESS": compress, "BIGTIFF": config.get("write.bigtiff")}
    options.update(extra)
    pred = predictor if predictor is not None else default_predictor(dtype, compress)
    if pred is not None:
        options.setdefault("PREDICTOR", pred)
    return options


def output_driver(driver: str) -> str:
    """``"GTiff"`` or ``"COG"`` for ``driver`` in any case; anything else is an `OutputError`."""
    names = {"GTIFF": "GTiff", "COG": "COG"}
    if driver.upper() not in names:
        raise OutputError(f"unsupported output driver {driver!r}; use 'GTiff' or 'COG'")
    return names[driver.upper()]
