"""The one table of warp resampling methods: our name, GDAL's name, kernel radius.

Imports nothing heavy, so the command line can offer the names without loading GDAL.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pipeline.errors import ReprojectError


class Method(NamedTuple):
    """One resampling method of GDAL's warper.

    Attributes
    ----------
    gdal : str
        ``ResampleAlg`` as GDAL writes it in warped-VRT XML (``Maximum``, ``Quartile1``...):
        an unknown name there silently means nearest neighbour.
    radius : int
        Kernel radius in source pixels at scale 1 (area methods: one partially covered
        pixel); it grows by ``1 / scale`` when downsampling.
    """

    gdal: str
    radius: int


#: rasterio's resampling name -> `Method`, in rasterio's order.
METHODS: dict[str, Method] = {
    "nearest": Method("NearestNeighbour", 1),
    "bilinear": Method("Bilinear", 1),
    "cubic": Method("Cubic", 2),
    "cubic_spline": Method("CubicSpline", 2),
    "lanczos": Method("Lanczos", 3),
    "average": Method("Average", 1),
    "mode": Method("Mode", 1),
    "max": Method("Maximum", 1),
    "min": Method("Minimum", 1),
    "med": Method("Median", 1),
    "q1": Method("Quartile1", 1),
    "q3": Method("Quartile3", 1),
    "sum": Method("Sum", 1),
    "rms": Method("RootMeanSquare", 1),
}


def resampling_name(resampling: Any) -> str:
    """Normalise ``resampling`` (a name or `rasterio.enums.Resampling`) to a key of `METHODS`.

    Raises
    ------
    ReprojectError
        Not a warp resampling method.
    """
    name = getattr(resampling, "name", None) or str(resampling).lower()
    if name not in METHODS:
        raise ReprojectError(
            f"unknown resampling {resampling!r}; choose one of {', '.join(METHODS)}"
        )
    return name


__all__ = ["METHODS", "Method", "resampling_name"]
