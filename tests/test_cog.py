"""COG output: strict validity, overviews that hold the real data, atomicity, CLI and batch.

Overviews are checked against an independent reference: the same full-resolution data written
to a plain GeoTIFF and given overviews by rasterio's ``build_overviews`` directly.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from rasterio.enums import Resampling
from rio_cogeo.cogeo import cog_validate

import pipeline
from pipeline.cli import cli as main
from pipeline.errors import OutputError
from pipeline.io import cog
from pipeline.testing import write_synthetic_raster


def _strict_valid(path: str | os.PathLike[str]) -> None:
    valid, errors, warnings = cog_validate(os.fspath(path), strict=True, quiet=True)
    assert valid, (errors, warnings)


def _levels(path: str | os.PathLike[str]) -> list[np.ndarray]:
    """Every overview level's data, finest first."""
    with rasterio.open(path) as ds:
        count = len(ds.overviews(1))
    out = []
    for level in range(count):
        with rasterio.open(path, overview_level=level) as ovr:
            out.append(ovr.read())
    return out


def _reference_overviews(
    data: np.ndarray,
    profile: dict[str, Any],
    factors: list[int],
    resampling: str,
    tmp: pathlib.Path,
) -> list[np.ndarray]:
    """Overviews of ``data`` built by rasterio directly on a plain, untiled GeoTIFF."""
    path = tmp / "reference-plain.tif"
    plain = {k: v for k, v in profile.items() if k in ("crs", "transform", "nodata", "dtype")}
    with rasterio.open(
        path, "w", driver="GTiff", count=data.shape[0], height=data.shape[1],
        width=data.shape[2], **plain,
    ) as dst:  # fmt: skip
        dst.write(data)
        dst.build_overviews(factors, Resampling[resampling])
    return _levels(path)


def _assert_overviews_match(
    ours: list[np.ndarray], ref: list[np.ndarray], nodata: float | None, atol: float
) -> None:
    assert len(ours) == len(ref) and ours, "overview count differs from the reference"
    for level, (a, b) in enumerate(zip(ours, ref, strict=True)):
        assert a.shape == b.shape, f"level {level}"
        if nodata is not None and np.isnan(nodata):
            valid_ref = ~np.isnan(b)
            valid_ours = ~np.isnan(a)
        elif nodata is not None:
            valid_ref, valid_ours = b != nodata, a != nodata
        else:
            valid_ref = valid_ours = np.ones(a.shape, dtype=bool)
        # real data wherever the reference has data: never zeros or nodata instead
        np.testing.assert_array_equal(valid_ours, valid_ref, err_msg=f"level {level} validity")
        np.testing.assert_allclose(
            a[valid_ref].astype(np.float64), b[valid_ref].astype(np.float64), atol=atol, rtol=0
        )
        assert np.any(a[valid_ref] != 0), f"level {level} is all zeros"


# --- pure rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "block", "expected"),
    [
        ((718, 791), 512, [2]),
        ((512, 512), 512, []),
        ((100, 513), 512, [2]),
        ((8192, 8192), 512, [2, 4, 8, 16]),
        ((8193, 100), 512, [2, 4, 8, 16, 32]),
        ((3000, 2500), 256, [2, 4, 8, 16]),
    ],
)
def test_overview_factors_stop_at_the_level_that_fits_one_block(shape, block, expected):
    assert cog.overview_factors(*shape, block) == expected


@given(
    st.integers(min_value=1, max_value=200_000),
    st.integers(min_value=1, max_value=200_000),
    st.sampled_from([128, 256, 512, 1024]),
)
def test_overview_factors_smallest_level_fits_and_the_one_before_does_not(h, w, block):
    factors = cog.overview_factors(h, w, block)
    assert factors == [2**i for i in range(1, len(factors) + 1)]
    last = factors[-1] if factors else 1
    assert max(-(-h // last), -(-w // last)) <= block
    before = factors[-2] if len(factors) >= 2 else 1
    if factors:
        assert max(-(-h // before), -(-w // before)) > block


def test_overview_resampling_defaults_average_for_floats_nearest_for_integers():
    assert cog.default_overview_resampling("float32") == "average"
    assert cog.default_overview_resampling(np.dtype("uint8")) == "nearest"
    assert cog.default_overview_resampling("int16") == "nearest"
    assert cog.resampling_for_overviews("Cubic", "uint8") == "cubic"
    with pytest.raises(OutputError, match="unknown overview resampling"):
        cog.resampling_for_overviews("bogus", "uint8")


def test_cog_options_map_predictor_and_let_creation_options_win():
    opts = cog.cog_options("float32", blocksize=256, creation_options={"level": 9})
    assert opts["PREDICTOR"] == "FLOATING_POINT" and opts["BLOCKSIZE"] == 256
    assert opts["LEVEL"] == 9 and opts["COMPRESS"] == "DEFLATE"
    opts = cog.cog_options("uint8", blocksize=512, creation_options={"COMPRESS": "none"})
    assert opts["COMPRESS"] == "NONE" and "PREDICTOR" not in opts


# --- write_raster(driver="COG") -----------------------------------------------------------


def test_cog_of_rgb_byte_is_valid_lossless_and_its_overviews_equal_rasterio_s(
    shared_data, tmp_path
):
    src = shared_data / "RGB.byte.tif"
    out = pipeline.write_raster(pipeline.open_raster(src), tmp_path / "rgb.tif", driver="COG")
    _strict_valid(out)
    with rasterio.open(src) as s, rasterio.open(out) as d:
        data, profile = s.read(), s.profile
        np.testing.assert_array_equal(d.read(), data)
        assert d.crs == s.crs and d.transform == s.transform and d.nodata == s.nodata
        assert d.block_shapes[0] == (512, 512)
        assert d.overviews(1) == [2]
        assert d.compression is not None and d.compression.name.lower() == "deflate"
    ref = _reference_overviews(data, profile, [2], "nearest", tmp_path)
    _assert_overviews_match(_levels(out), ref, nodata=0.0, atol=0)
    assert sorted(os.listdir(tmp_path)) == ["reference-plain.tif", "rgb.tif"]


@pytest.mark.parametrize("resampling", ["average", "nearest"])
def test_cog_of_a_larger_float_raster_with_nodata_has_real_overviews(tmp_path, resampling):
    data = pipeline.testing.synthetic_array(1, 3000, 2500, dtype="float32", seed=3)
    data[0, 100:900, 300:1400] = -9999.0  # a big hole: stays nodata, never bleeds
    data[0, ::97, ::89] = -9999.0  # scattered nodata: excluded from averages
    src = write_synthetic_raster(tmp_path / "src.tif", data=data, nodata=-9999.0, block=256)
    da = pipeline.open_raster(src, chunks=(768, 512))  # several chunks per overview block
    out = pipeline.write_raster(
        da, tmp_path / "cog.tif", driver="COG", max_block=256, overview_resampling=resampling
    )
    _strict_valid(out)
    with rasterio.open(out) as d:
        np.testing.assert_array_equal(d.read(), data)
        assert d.overviews(1) == [2, 4, 8, 16]
        assert d.block_shapes[0] == (256, 256) and d.nodata == -9999.0
        profile = d.profile
    ref = _reference_overviews(data, profile, [2, 4, 8, 16], resampling, tmp_path)
    _assert_overviews_match(_levels(out), ref, nodata=-9999.0, atol=1e-3)


def test_cog_of_float_nan_nodata_averages_only_valid_pixels(tmp_path):
    data = pipeline.testing.synthetic_array(2, 1100, 1300, dtype="float32", seed=5)
    data[:, 200:260, :] = np.nan
    data[1, ::3, ::5] = np.nan
    src = write_synthetic_raster(tmp_path / "nan.tif", data=data, nodata=float("nan"))
    out = pipeline.write_raster(pipeline.open_raster(src), tmp_path / "nan_cog.tif", driver="COG")
    _strict_valid(out)
    with rasterio.open(out) as d:
        np.testing.assert_array_equal(d.read(), data)  # NaN positions included
        assert d.overviews(1) == [2, 4]
        profile = d.profile
    ref = _reference_overviews(data, profile, [2, 4], "average", tmp_path)
    _assert_overviews_match(_levels(out), ref, nodata=float("nan"), atol=1e-3)


def test_small_raster_gets_a_valid_cog_without_overviews(shared_data, tmp_path):
    out = pipeline.write_raster(
        pipeline.open_raster(shared_data / "byte.tif"), tmp_path / "b.tif", driver="COG"
    )
    _strict_valid(out)
    with rasterio.open(out) as d:
        assert d.overviews(1) == []
    assert cog.cog_report(out).line() == "COG valid, no overviews, 512x512 blocks"


@pytest.mark.parametrize("step", ["build_overviews", "translate_to_cog", "cog_report"])
def test_failure_while_making_the_cog_leaves_no_file_and_no_temporary(
    shared_data, tmp_path, monkeypatch, step
):
    def boom(*args: Any, **kwargs: Any) -> Any:
        if step == "cog_report":
            return cog.CogReport(valid=False, errors=["planted"])
        raise RuntimeError(f"planted failure in {step}")

    monkeypatch.setattr(cog, step, boom)
    target = tmp_path / "out.tif"
    with pytest.raises((RuntimeError, OutputError), match="planted"):
        pipeline.write_raster(pipeline.open_raster(shared_data / "RGB.byte.tif"), target,
                              driver="COG")  # fmt: skip
    assert os.listdir(tmp_path) == []


def test_failed_cog_leaves_an_existing_output_untouched(shared_data, tmp_path, monkeypatch):
    target = tmp_path / "out.tif"
    target.write_bytes(b"previous result")
    monkeypatch.setattr(cog, "build_overviews", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        pipeline.write_raster(
            pipeline.open_raster(shared_data / "RGB.byte.tif"), target, driver="COG",
            overwrite=True,
        )  # fmt: skip
    assert target.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == ["out.tif"]


def test_unknown_driver_and_overview_resampling_fail_before_any_work(shared_data, tmp_path):
    da = pipeline.open_raster(shared_data / "RGB.byte.tif")
    with pytest.raises(OutputError, match="unsupported output driver"):
        pipeline.write_raster(da, tmp_path / "x.tif", driver="PNG")
    with pytest.raises(OutputError, match="unknown overview resampling"):
        pipeline.write_raster(da, tmp_path / "x.tif", driver="COG", overview_resampling="blur")
    assert os.listdir(tmp_path) == []


# --- CLI ----------------------------------------------------------------------------------


def _run(args: list[str]) -> Any:
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_cli_reproject_format_cog_with_creation_options(shared_data, tmp_path):
    out = tmp_path / "warped.tif"
    res = _run([
        "reproject", str(shared_data / "RGB.byte.tif"), str(out), "--dst-crs", "EPSG:3857",
        "--resampling", "bilinear", "--format", "cog", "--co", "COMPRESS=ZSTD",
        "--co", "BLOCKSIZE=256", "--no-progress",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "COG valid, 2 overview(s) (2, 4), 256x256 blocks" in res.output
    _strict_valid(out)
    plain = tmp_path / "plain.tif"
    res = _run([
        "reproject", str(shared_data / "RGB.byte.tif"), str(plain), "--dst-crs", "EPSG:3857",
        "--resampling", "bilinear", "--no-progress",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as a, rasterio.open(plain) as b:
        assert a.compression.name.lower() == "zstd"
        assert a.transform == b.transform and a.crs == b.crs
        np.testing.assert_array_equal(a.read(), b.read())


def test_cli_compute_format_cog(shared_data, tmp_path):
    out = tmp_path / "rev.tif"
    res = _run([
        "compute", str(shared_data / "RGB.byte.tif"), str(out), "--kernel", "reverse-bands",
        "--format", "cog", "--overview-resampling", "average", "--no-progress",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    _strict_valid(out)
    with rasterio.open(shared_data / "RGB.byte.tif") as s, rasterio.open(out) as d:
        np.testing.assert_array_equal(d.read(), s.read()[::-1])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--overview-resampling", "average"], "--overview-resampling needs --format cog"),
        (["--co", "NOVALUE"], "expected NAME=VALUE"),
        (["--format", "cog", "--co", "BLOCKSIZE=100"], "BLOCKSIZE must be a multiple of 16"),
    ],
)
def test_cli_output_option_errors_exit_2_before_writing(shared_data, tmp_path, extra, message):
    res = CliRunner().invoke(
        main,
        ["compute", str(shared_data / "byte.tif"), str(tmp_path / "o.tif"),
         "--kernel", "reverse-bands", *extra],
    )  # fmt: skip
    assert res.exit_code == 2 and message in res.output
    assert os.listdir(tmp_path) == []


def test_verify_cog_reports_validity_overviews_and_blocks(shared_data, tmp_path):
    out = pipeline.write_raster(
        pipeline.open_raster(shared_data / "RGB.byte.tif"), tmp_path / "c.tif", driver="COG"
    )
    report = tmp_path / "verify.jsonl"
    res = _run(["verify", "--cog", out, str(shared_data / "RGB.byte.tif"), "--report",
                str(report)])  # fmt: skip
    assert res.exit_code == 1
    assert "COG valid, 1 overview(s) (2), 512x512 blocks" in res.output
    assert "RGB.byte.tif: not a valid COG" in res.output
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    assert [r["ok"] for r in rows] == [True, False]
    assert rows[0]["cog"].startswith("COG valid")
    assert _run(["verify", "--cog", out]).exit_code == 0
    assert _run(["verify", str(shared_data / "RGB.byte.tif")]).exit_code == 0


# --- batch --------------------------------------------------------------------------------


def test_batch_format_cog_writes_valid_cogs_equal_to_reproject_and_resumes(shared_data, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "rgb.tif").write_bytes((shared_data / "RGB.byte.tif").read_bytes())
    write_synthetic_raster(inputs / "big.tif", bands=1, height=1100, width=900, dtype="int16",
                           nodata=-1, block=256)  # fmt: skip
    outdir = tmp_path / "out"
    with pipeline.connect(n_workers=1, threads_per_worker=2, dashboard_address=":0"):
        summary = pipeline.run_batch(
            inputs, outdir, "EPSG:3857", resampling="bilinear", driver="COG"
        )
        assert summary.exit_code == 0 and summary.done == 2
        for name in ("rgb", "big"):
            out = outdir / f"{name}_3857.tif"
            _strict_valid(out)
            ref = tmp_path / f"{name}_ref.tif"
            res = _run([
                "reproject", str(inputs / f"{name}.tif"), str(ref), "--dst-crs", "EPSG:3857",
                "--resampling", "bilinear", "--format", "cog", "--no-progress",
            ])  # fmt: skip
            assert res.exit_code == 0, res.output
            with rasterio.open(out) as a, rasterio.open(ref) as b:
                assert a.transform == b.transform and a.overviews(1) == b.overviews(1)
                np.testing.assert_array_equal(a.read(), b.read())
                for level in range(len(a.overviews(1))):
                    with (rasterio.open(out, overview_level=level) as oa,
                          rasterio.open(ref, overview_level=level) as ob):  # fmt: skip
                        np.testing.assert_array_equal(oa.read(), ob.read())
        again = pipeline.run_batch(inputs, outdir, "EPSG:3857", resampling="bilinear",
                                   driver="COG")  # fmt: skip
        assert again.skipped == 2
        # plain GeoTIFF outputs of an earlier run are not COGs: a COG batch redoes them
        plain = tmp_path / "plain"
        pipeline.run_batch(inputs, plain, "EPSG:3857", resampling="bilinear")
        with pytest.raises(AssertionError):
            _strict_valid(plain / "rgb_3857.tif")
        redo = pipeline.run_batch(inputs, plain, "EPSG:3857", resampling="bilinear",
                                  driver="COG")  # fmt: skip
        assert redo.done == 2
        _strict_valid(plain / "rgb_3857.tif")
    assert not [p for p in outdir.rglob("*") if p.name.endswith(".pipeline-tmp")]


def test_cli_batch_format_cog_and_kernel_params_reach_the_tiles(shared_data, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "dem.tif").write_bytes((shared_data / "shade.tif").read_bytes())
    out = tmp_path / "out"
    res = _run([
        "batch", str(inputs), "-o", str(out), "--dst-crs", "EPSG:3857", "--format", "cog",
        "--kernel", "threshold", "--param", "value=100", "--no-progress",
        "--workers", "1", "--threads", "2", "--dashboard-address", ":0",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    _strict_valid(out / "dem_3857.tif")
    with rasterio.open(shared_data / "shade.tif") as s, rasterio.open(out / "dem_3857.tif") as d:
        src = s.read(1)
        got = d.read(1)
        valid = src != s.nodata
        # same CRS and grid: threshold at 100 over valid pixels, an independent numpy check
        np.testing.assert_array_equal(got[valid] != 0, src[valid] > 100)
