"""``pipeline reproject`` through click's CliRunner (the command is registered here until it is
wired into the ``pipeline`` group)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.warp import aligned_target, calculate_default_transform

import pipeline
from pipeline.cli import _Group
from pipeline.cli.reproject import reproject as reproject_command
from pipeline.warp.engine import warp_array
from pipeline.warp.reproject import warp_spec

_CLUSTER = ["--threads", "2", "--dashboard-address", "127.0.0.1:0", "--no-progress"]

#: The ``pipeline`` group's error handling around only this command.
group = _Group(name="pipeline", commands={"reproject": reproject_command})


def _run(*args: object) -> object:
    return CliRunner().invoke(group, ["reproject", *map(str, args)], obj={})


def _one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("pipeline: error:")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_help_lists_rio_warp_style_options() -> None:
    result = CliRunner().invoke(reproject_command, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--dst-crs",
        "--resolution",
        "--bounds",
        "--resampling",
        "--dst-nodata",
        "--tap",
        "--kernel",
        "--chunks",
        "--overwrite",
        "--scheduler",
    ):
        assert option in result.output


def test_reproject_writes_the_whole_array_warp(shared_data, tmp_path) -> None:
    src, dst = shared_data / "RGB.byte.tif", tmp_path / "out.tif"
    args = [src, dst, "--dst-crs", "EPSG:3857", "--resampling", "bilinear", "--chunks", 256]
    result = CliRunner().invoke(reproject_command, [*map(str, args), *_CLUSTER])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    da = pipeline.open_raster(src)
    expected = warp_array(warp_spec(da, "EPSG:3857", resampling="bilinear"), da.values)
    with rasterio.open(src) as s:
        transform, width, height = calculate_default_transform(
            s.crs, "EPSG:3857", s.width, s.height, *s.bounds
        )
    with rasterio.open(dst) as out:
        assert out.crs == rasterio.crs.CRS.from_epsg(3857) and out.nodata == 0
        assert (out.transform, out.width, out.height) == (transform, width, height)
        np.testing.assert_array_equal(out.read(), expected)


def test_resolution_tap_kernel_and_nodata_options(shared_data, tmp_path) -> None:
    src, dst = shared_data / "world.rgb.tif", tmp_path / "out.tif"
    result = _run(
        src, dst, "--dst-crs", "EPSG:3857", "--res", "150000", "--tap", "--kernel",
        "reverse-bands", "--dst-nodata", "7", *_CLUSTER,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    da = pipeline.open_raster(src)
    kw = {"resolution": 150000.0, "target_aligned_pixels": True, "dst_nodata": 7}
    spec = warp_spec(da, "EPSG:3857", **kw)
    with rasterio.open(dst) as out:
        plain = warp_spec(da, "EPSG:3857", resolution=150000.0).dst
        assert (out.transform, out.width, out.height) == aligned_target(
            plain.transform, plain.width, plain.height, (150000.0, 150000.0)
        )
        assert out.nodata == 7
        # nearest commutes with reversing the bands
        np.testing.assert_array_equal(out.read(), warp_array(spec, da.values)[::-1])


def test_bounds_and_two_resolutions(shared_data, tmp_path) -> None:
    dst = tmp_path / "out.tif"
    bounds = ("-8780000", "2720000", "-8600000", "2940000")
    result = _run(
        shared_data / "RGB.byte.tif", dst, "--dst-crs", "EPSG:3857", "--bounds", *bounds,
        "--resolution", "600,400", *_CLUSTER,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with rasterio.open(dst) as out:
        assert out.transform == rasterio.Affine(600.0, 0, -8780000.0, 0, -400.0, 2940000.0)
        assert (out.width, out.height) == (300, 550)


@pytest.mark.parametrize(
    ("crs", "fragment"),
    [("EPSG:999999", "not recognised"), ("Lambert", "ambiguous"), ("UTM", "not recognised")],
)
def test_bad_crs_is_a_one_line_error_before_any_cluster(shared_data, tmp_path, crs, fragment):
    dst = tmp_path / "out.tif"
    result = _run(shared_data / "RGB.byte.tif", dst, "--dst-crs", crs, *_CLUSTER)
    line = _one_line_error(result, fragment, repr(crs), "EPSG:3857", "PROJ string", "WKT")
    assert "dashboard" not in result.output.lower() and "LocalCluster" not in result.output
    assert not dst.exists() and line


def test_input_without_crs_names_the_file(shared_data, tmp_path) -> None:
    result = _run(shared_data / "rotated.tif", tmp_path / "o.tif", "--dst-crs", "EPSG:3857")
    _one_line_error(result, "rotated.tif", "no CRS")


def test_existing_output_needs_overwrite(shared_data, tmp_path) -> None:
    dst = tmp_path / "out.tif"
    dst.write_bytes(b"keep me")
    result = _run(shared_data / "byte.tif", dst, "--dst-crs", "EPSG:4326", *_CLUSTER)
    _one_line_error(result, "output exists", "--overwrite")
    assert dst.read_bytes() == b"keep me"
    result = _run(shared_data / "byte.tif", dst, "--dst-crs", "EPSG:4326", "--overwrite", *_CLUSTER)
    assert result.exit_code == 0, result.output
    with rasterio.open(dst) as out:
        assert out.crs == rasterio.crs.CRS.from_epsg(4326)


def test_usage_errors_exit_2(shared_data, tmp_path) -> None:
    src, dst = shared_data / "byte.tif", tmp_path / "o.tif"
    for extra in (
        ["--resolution", "1,2,3"],
        ["--resolution", "-1"],
        ["--resampling", "gauss"],
        ["--bounds", "1", "2", "3"],
        ["--chunks", "0"],
    ):
        result = _run(src, dst, "--dst-crs", "EPSG:4326", *extra)
        assert result.exit_code == 2, (extra, result.output)
    result = _run(src, dst)
    assert result.exit_code == 2 and "--dst-crs" in result.output
    assert not dst.exists()


def test_conflicting_grid_options_fail_before_any_cluster(shared_data, tmp_path) -> None:
    result = _run(
        shared_data / "byte.tif", tmp_path / "o.tif", "--dst-crs", "EPSG:4326",
        "--bounds", "10", "0", "0", "10", *_CLUSTER,
    )  # fmt: skip
    _one_line_error(result, "right > left")
    assert "LocalCluster" not in result.output


def test_cli_offers_exactly_the_engines_resampling_methods() -> None:
    from pipeline.cli.reproject import RESAMPLING_CHOICES
    from pipeline.warp.resampling import METHODS

    assert list(RESAMPLING_CHOICES) == list(METHODS)
