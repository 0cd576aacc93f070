"""``pipeline compute --kernel NAME --param k=v`` and ``pipeline kernels``, in process."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio

import pipeline
import pipeline.cli.compute
import pipeline.cli.options
from pipeline.kernels import registry
from pipeline.kernels.testing import synthetic_dem
from pipeline.testing import write_synthetic_raster
from tests.test_cli import invoke
from tests.test_kernel_terrain import _reference

_CLUSTER = ["--threads", "1", "--dashboard-address", "127.0.0.1:0", "--no-progress"]


@pytest.fixture
def dem_path(tmp_path) -> str:
    dem = synthetic_dem(64, 48, seed=6)
    dem[0, 10:14, 20:30] = -9999.0
    return write_synthetic_raster(tmp_path / "dem.tif", data=dem, nodata=-9999.0, block=16)


@pytest.fixture
def no_cluster(monkeypatch):
    """Fail the test if a cluster would start."""

    def refuse(options):
        raise AssertionError("a cluster was started before the arguments were validated")

    monkeypatch.setattr(pipeline.cli.options, "connect_from_options", refuse)


def test_kernels_lists_every_kernel_with_parameters_and_defaults() -> None:
    result = invoke("kernels")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for spec in registry.list_kernels():
        assert any(line.startswith(spec.name + " ") for line in lines), spec.name
    assert "    size: int = 3" in result.output
    assert "    expr: str (required)" in result.output
    assert "    azimuth: float = 315.0" in result.output
    assert "    clip: bool = true" in result.output
    names = invoke("kernels", "--names").stdout.split()
    assert names == sorted(names) and "focal-mean" in names


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--kernel", "focal-mean", "--param", "bogus=1"], "has no parameter 'bogus'"),
        (["--kernel", "focal-mean", "--param", "size=abc"], "expects int, got 'abc'"),
        (["--kernel", "focal-mean", "--param", "size=4"], "odd integer"),
        (["--kernel", "threshold"], "needs parameter(s) ['value']"),
        (["--kernel", "band-math", "--param", "expr=b9 * 2"], "uses b9"),
        (["--kernel", "no.such.module:f"], "cannot import 'no.such.module'"),
    ],
)
def test_bad_kernel_arguments_fail_in_one_line_before_any_cluster(
    dem_path, tmp_path, no_cluster, args, fragment
) -> None:
    result = invoke("compute", dem_path, tmp_path / "o.tif", *args)
    assert result.exit_code == 1
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("pipeline: error:")]
    assert len(errors) == 1 and fragment in errors[0], result.output
    assert "Traceback" not in result.output and result.stdout == ""
    assert not (tmp_path / "o.tif").exists()


def test_compute_slope_with_a_parameter(dem_path, tmp_path) -> None:
    dst = tmp_path / "slope.tif"
    result = invoke(
        "compute", dem_path, dst, "--kernel", "slope", "--param", "z_factor=2", *_CLUSTER
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {dst}" in result.stdout
    with rasterio.open(dem_path) as src:
        dem = src.read(1).astype(np.float64)
        crs, transform = src.crs, src.transform
    # Horn's slope by the window reference (tests/test_kernel_terrain.py), on the file's 30 m
    # UTM pixels.
    assert crs.is_projected and (transform.a, -transform.e) == (30.0, 30.0)
    expected = _reference(np.where(dem == -9999.0, np.nan, 2.0 * dem), "slope", 30.0, 30.0)
    with rasterio.open(dst) as ds:
        assert ds.dtypes == ("float32",) and math.isnan(ds.nodata)
        assert (ds.crs, ds.transform) == (crs, transform)
        got = ds.read(1)
    np.testing.assert_array_equal(np.isnan(got), dem == -9999.0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4, equal_nan=True)
    # ... and bit for bit what the Python API computes.
    api = pipeline.apply_kernel(pipeline.open_raster(dem_path), "slope", z_factor=2.0)
    np.testing.assert_array_equal(got, api.values[0])
