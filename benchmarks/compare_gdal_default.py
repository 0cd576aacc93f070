"""Print, per resampling method, how exact chunked reprojection is and how far it is from GDAL.

For RGB.byte.tif (or a raster given on the command line) reprojected to EPSG:3857:

* ``chunked != whole``: pixels where `pipeline.reproject` in 64-pixel chunks differs from
  the same warp of the whole array in one go (`pipeline.warpengine.warp_array`); 0 means
  exact.
* ``vs default``: pixels (band values) where that whole-array warp differs from GDAL's plain
  default, ``rasterio.warp.reproject`` of the whole array (approximate transformer with 0.125
  pixel error, per-chunk XSCALE/YSCALE), the largest absolute difference among pixels that are
  valid in both, and the share of values off by more than 1.

Usage::

    uv run python benchmarks/compare_gdal_default.py [RASTER] [--dst-crs EPSG:3857] [--chunks 64]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import warnings

import dask
import numpy as np
import rasterio
from rasterio.enums import Resampling

import pipeline
from pipeline.errors import PipelineWarning
from pipeline.warp.engine import warp_array
from pipeline.warp.reproject import reproject, warp_spec
from pipeline.warp.resampling import METHODS as TABLE

METHODS = list(TABLE)  # every warp resampling rasterio offers


def _default_raster() -> pathlib.Path:
    env = os.environ.get("PIPELINE_SHARED_DATA")
    folder = (
        pathlib.Path(env) if env else pathlib.Path(__file__).resolve().parents[2] / "shared/data"
    )
    return folder / "RGB.byte.tif"


def compare(path: pathlib.Path, dst_crs: str, chunks: int, method: str) -> dict[str, float]:
    """Exactness and distance to GDAL's default for one method."""
    da = pipeline.open_raster(path)
    spec = warp_spec(da, dst_crs, resampling=method)
    source = da.values
    whole = warp_array(spec, source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PipelineWarning)  # sum on GDAL < 3.12.1
        chunked = reproject(da, dst_crs, resampling=method, chunks=chunks).values
    plain = np.zeros_like(whole)
    rasterio.warp.reproject(
        source,
        plain,
        src_transform=spec.src.transform,
        src_crs=spec.src.crs,
        dst_transform=spec.dst.transform,
        dst_crs=spec.dst.crs,
        resampling=Resampling[method],
        src_nodata=spec.src_nodata,
        dst_nodata=spec.dst_nodata,
    )
    nodata = spec.dst_nodata
    valid = np.ones(whole.shape[1:], dtype=bool)
    if nodata is not None:
        valid = (whole != nodata).any(axis=0) & (plain != nodata).any(axis=0)
    diff = np.abs(whole.astype("f8") - plain.astype("f8"))[:, valid]
    return {
        "chunked_differing": int((chunked != whole).sum()),
        "vs_default_fraction": float((whole != plain).mean()),
        "vs_default_max": float(diff.max(initial=0.0)),
        "vs_default_over_1": float((diff > 1).mean()) if diff.size else 0.0,
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raster", nargs="?", type=pathlib.Path, default=_default_raster())
    parser.add_argument("--dst-crs", default="EPSG:3857")
    parser.add_argument("--chunks", type=int, default=64)
    args = parser.parse_args()
    print(
        f"{args.raster.name} -> {args.dst_crs}, {args.chunks}-pixel chunks, "
        f"rasterio {rasterio.__version__} / GDAL {rasterio.__gdal_version__}"
    )
    header = ("method", "chunked!=whole", "vs default", "max|diff|", "|diff|>1")
    print("{:13s} {:>14s} {:>11s} {:>10s} {:>9s}".format(*header))
    with dask.config.set(scheduler="threads"):
        for method in METHODS:
            r = compare(args.raster, args.dst_crs, args.chunks, method)
            print(
                f"{method:13s} {r['chunked_differing']:14d} {r['vs_default_fraction']:11.2%} "
                f"{r['vs_default_max']:10.0f} {r['vs_default_over_1']:9.2%}"
            )


if __name__ == "__main__":
    main()
