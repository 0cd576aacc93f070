"""Shared fixtures: the real test rasters in ../shared/data and small generated ones."""

from __future__ import annotations

import contextlib
import os
import pathlib
from collections.abc import Iterator

import dask
import numpy as np
import pytest
import rasterio.warp
from rasterio.enums import Resampling


def _shared_data_dir() -> pathlib.Path:
    env = os.environ.get("PIPELINE_SHARED_DATA")
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """Folder of rasterio's real test rasters (never copied into the project)."""
    folder = _shared_data_dir()
    if not (folder / "RGB.byte.tif").is_file():
        pytest.fail(f"test data not found at {folder}; set PIPELINE_SHARED_DATA", pytrace=False)
    return folder


class _ComputeCounter:
    """A dask scheduler that fails the test if anything is computed (xarray's pattern)."""

    def __call__(self, dsk, keys, **kwargs):
        raise RuntimeError("dask computed something where the graph should stay lazy")


@contextlib.contextmanager
def raise_if_dask_computes() -> Iterator[None]:
    """Fail when any dask computation runs inside the block."""
    with dask.config.set(scheduler=_ComputeCounter()):
        yield


def gdal_default_warp(data: np.ndarray, spec, method: str, src_nodata) -> np.ndarray:
    """``rasterio.warp.reproject`` of the whole array with GDAL's defaults, on ``spec``'s grid.

    GDAL's default approximate transformer (0.125 px), no XSCALE/YSCALE: the plain warp our
    exact one is compared with.
    """
    out = np.zeros((spec.count, *spec.dst.shape), dtype=data.dtype)
    rasterio.warp.reproject(
        data,
        out,
        src_transform=spec.src.transform,
        src_crs=spec.src.crs,
        dst_transform=spec.dst.transform,
        dst_crs=spec.dst.crs,
        resampling=Resampling[method],
        src_nodata=src_nodata,
        dst_nodata=spec.dst_nodata,
    )
    return out
