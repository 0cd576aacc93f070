"""Print, per resampling method, how exact chunked reprojection is and how far each
transformer is from GDAL's own default warp.

For RGB.byte.tif (or a raster given on the command line) reprojected to EPSG:3857:

* (i) ``chunked!=whole``: values where `pipeline.reproject` with its defaults (GDAL's
  approximate transformer, 0.125 px) in 64-pixel chunks differs from the same warp of the
  whole array in one go (`pipeline.warp.engine.warp_array`); 0 expected.
* (ii) ``default!=gdal``: values where that whole-array default warp differs from GDAL's
  plain default, ``rasterio.warp.reproject`` of the whole array; 0 expected for outputs at
  most 1024 pixels wide (`pipeline.warp.grid.WARP_WHOLE_ROW_WIDTH`).
* (iii) ``--et 0`` vs GDAL: the exact transformer's whole-array warp against the same GDAL
  default: share of differing values, largest absolute difference among pixels valid in both,
  share of values off by more than 1.

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
    """(i), (ii) and (iii) of the module docstring for one method."""
    da = pipeline.open_raster(path)
    spec = warp_spec(da, dst_crs, resampling=method)
    exact_spec = warp_spec(da, dst_crs, resampling=method, error_threshold=0)
    source = da.values
    whole = warp_array(spec, source)
    exact = warp_array(exact_spec, source)
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
    valid = np.ones(exact.shape[1:], dtype=bool)
    if nodata is not None:
        valid = (exact != nodata).any(axis=0) & (plain != nodata).any(axis=0)
    diff = np.abs(exact.astype("f8") - plain.astype("f8"))[:, valid]
    return {
        "width": spec.dst.width,
        "chunked_differing": int((chunked != whole).sum()),
        "default_differing": int((whole != plain).sum()),
        "exact_fraction": float((exact != plain).mean()),
        "exact_max": float(diff.max(initial=0.0)),
        "exact_over_1": float((diff > 1).mean()) if diff.size else 0.0,
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raster", nargs="?", type=pathlib.Path, default=_default_raster())
    parser.add_argument("--dst-crs", default="EPSG:3857")
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    args = parser.parse_args()
    print(
        f"{args.raster.name} -> {args.dst_crs}, {args.chunks}-pixel chunks, "
        f"rasterio {rasterio.__version__} / GDAL {rasterio.__gdal_version__}"
    )
    header = (
        "method",
        "(i) chunked!=whole",
        "(ii) default!=gdal",
        "(iii) et0!=gdal",
        "max|d|",
        "|d|>1",
    )
    print("{:13s} {:>18s} {:>18s} {:>15s} {:>7s} {:>7s}".format(*header))
    width = 0
    with dask.config.set(scheduler="threads"):
        for method in args.methods:
            r = compare(args.raster, args.dst_crs, args.chunks, method)
            width = int(r["width"])
            print(
                f"{method:13s} {r['chunked_differing']:18d} {r['default_differing']:18d} "
                f"{r['exact_fraction']:15.2%} {r['exact_max']:7.0f} {r['exact_over_1']:7.2%}"
            )
    print(
        f"output {width} pixels wide: (i) 0 expected; (ii) 0 expected"
        + (" (<= 1024 wide)" if width <= 1024 else " only up to 1024 wide: this one is wider")
    )


if __name__ == "__main__":
    main()
