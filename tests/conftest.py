"""Shared fixtures and helpers: the real test rasters in ../shared/data, small generated ones,
and the whole-array warp every chunked result is compared with."""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import subprocess
import warnings
from collections.abc import Iterator

import dask
import numpy as np
import pytest
import rasterio
import rasterio.warp
import xarray as xr
from affine import Affine
from click.testing import CliRunner
from rasterio.crs import CRS
from rasterio.enums import Resampling

from pipeline.testing import write_synthetic_raster
from pipeline.warp import grid as warpgrid
from pipeline.warp.engine import warp_array
from pipeline.warp.grid import GridSpec
from pipeline.warp.reproject import reproject, warp_spec
from tests import netns

#: Every resampling method GDAL's warper offers, by its rasterio name.
ALL_METHODS = [
    "nearest",
    "bilinear",
    "cubic",
    "cubic_spline",
    "lanczos",
    "average",
    "mode",
    "max",
    "min",
    "med",
    "q1",
    "q3",
    "sum",
    "rms",
]
#: A 30 m UTM zone 18N geotransform for synthetic rasters.
UTM_30M = Affine(30.0, 0, 500000, 0, -30.0, 4500000)


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

    GDAL's default approximate transformer (0.125 px), no XSCALE/YSCALE, GDAL's own chunking:
    the independent reference our default warp must equal, and our exact one is compared with.
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


def differing(a: np.ndarray, b: np.ndarray) -> int:
    """Pixels that differ (NaN equals NaN)."""
    assert a.shape == b.shape and a.dtype == b.dtype
    same = a == b
    if a.dtype.kind == "f":
        same |= np.isnan(a) & np.isnan(b)
    return int((~same).sum())


def whole_warp(da: xr.DataArray, dst_crs, **kwargs) -> np.ndarray:
    """The whole-array warp with the options `reproject` uses for every chunk."""
    spec = warp_spec(da, dst_crs, **kwargs)
    source = np.asarray(da.values)
    out = warp_array(spec, source.astype(spec.dtype))
    return out.astype(da.dtype)


def check_equal(da: xr.DataArray, dst_crs, chunks, **kwargs) -> np.ndarray:
    """``reproject`` in ``chunks``, checked equal to `whole_warp`; the chunked values."""
    out = reproject(da, dst_crs, chunks=chunks, **kwargs)
    chunked = out.values
    whole = whole_warp(da, dst_crs, **kwargs)
    assert differing(chunked, whole) == 0
    return chunked


def synthetic_da(
    data,
    transform: Affine,
    crs: str = "EPSG:32618",
    *,
    nodata: float | None = None,
    chunks: int | None = 64,
) -> xr.DataArray:
    """A dask-backed ``(band, y, x)`` raster built with rioxarray only (no file)."""
    count, height, width = data.shape
    grid = GridSpec(CRS.from_user_input(crs), transform, width, height)
    y, x = warpgrid.pixel_center_coords(grid)
    da = xr.DataArray(
        data, dims=("band", "y", "x"), coords={"band": np.arange(1, count + 1), "y": y, "x": x}
    )
    da = da.rio.write_crs(crs).rio.write_transform(transform)
    if nodata is not None:
        da = da.rio.write_nodata(nodata, encoded=False)
    if chunks is None:
        return da
    return da.chunk({"band": -1, "y": chunks, "x": chunks})


def file_grid(path) -> GridSpec:
    """The grid of a raster file."""
    with rasterio.open(path) as ds:
        return GridSpec(ds.crs, ds.transform, ds.width, ds.height)


def utm_grid(height: int = 300, width: int = 257, res: float = 30.0) -> GridSpec:
    """A north-up UTM 18N grid at ``res`` metres, top-left at (500000, 4500000)."""
    return GridSpec(CRS.from_epsg(32618), Affine(res, 0, 500000, 0, -res, 4500000), width, height)


def good_tiles(folder: pathlib.Path, n: int = 4, size: int = 128) -> list[pathlib.Path]:
    """``n`` small, valid, side-by-side UTM GeoTIFFs ``tile0.tif``... in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        pathlib.Path(
            write_synthetic_raster(
                folder / f"tile{i}.tif",
                height=size,
                width=size,
                block=None,
                seed=i,
                origin=(500000.0 + i * size * 30.0, 4500000.0),
            )
        )
        for i in range(n)
    ]


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    """CliRunner; the CLI's logger levels, environment variable and warning format restored."""
    names = ("distributed", "distributed.client", "rasterio")
    levels = {n: logging.getLogger(n).level for n in names}
    env = os.environ.get("DASK_LOGGING__DISTRIBUTED")
    fmt = warnings.formatwarning
    yield CliRunner()
    warnings.formatwarning = fmt
    for n, level in levels.items():
        logging.getLogger(n).setLevel(level)
    if env is None:
        os.environ.pop("DASK_LOGGING__DISTRIBUTED", None)
    else:
        os.environ["DASK_LOGGING__DISTRIBUTED"] = env


@pytest.fixture(autouse=True)
def _aws_environment_restored() -> Iterator[None]:
    """Restore this process's ``AWS_*`` variables after each test.

    `pipeline.io.cloud.apply_endpoint_settings` writes GDAL's endpoint variables (derived from
    a test's ``AWS_ENDPOINT_URL``) into ``os.environ``, which monkeypatch does not undo; left
    there they would point later tests and the notebooks' kernels at a stopped server.
    """
    before = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    yield
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        if name not in before:
            del os.environ[name]
    os.environ.update(before)


@pytest.fixture(scope="module")
def moto() -> Iterator[object]:
    """moto's S3 server on 127.0.0.1 (`tests.servers.MotoS3`), for one test module."""
    from tests.servers import MotoS3

    server = MotoS3().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def net_cluster(tmp_path_factory) -> Iterator[object]:
    """A TLS cluster on separate network namespaces (`tests.netns_cluster.NetCluster`).

    Scheduler, two single-thread workers and a client host on a private bridge; the tmp folder
    is their shared filesystem. Skipped where namespaces are not allowed (not root, no ``ip``).
    """
    reason = netns.unavailable_reason()
    if reason:
        pytest.skip(f"network-namespace cluster unavailable: {reason}")
    from tests.netns_cluster import NetCluster

    with NetCluster(tmp_path_factory.mktemp("netns")) as cluster:
        yield cluster


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a network namespace this run created is still there (then delete it)."""
    if netns.unavailable_reason() is not None:
        return
    left = netns.namespaces(f"{netns.NAME_PREFIX}{os.getpid()}-")
    for name in left:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=15)
    if left:
        print(f"\nnetwork namespaces left behind (deleted now): {left}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
