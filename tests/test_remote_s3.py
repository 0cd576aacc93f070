"""s3:// inputs against a real moto S3 server on 127.0.0.1: values equal the local files'.

The store is reached as users reach S3-compatible stores, through boto3's ``AWS_ENDPOINT_URL``
(translated for GDAL by `pipeline.io.cloud`). Each module run has its own bucket name, so
GDAL's process-wide cache never serves one server's objects for another's.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import numpy as np
import pytest
import rasterio
import rasterio.shutil

import pipeline
from pipeline.cli import cli
from pipeline.io.cloud import endpoint_settings
from pipeline.io.gdal_env import worker_env
from tests.servers import CLEARED_AWS_VARS, MotoS3, assert_open_equals_local, offline_aws_env


@pytest.fixture(scope="module")
def cogs(shared_data: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """COGs made from the shared rasters: rgb.tif (RGB.byte.tif, 256 blocks, overviews) and
    cogeo.tif (1024x1024x3, 512 blocks), and a text file named like a raster."""
    root = tmp_path_factory.mktemp("s3cogs")
    rasterio.shutil.copy(
        str(shared_data / "RGB.byte.tif"), str(root / "rgb.tif"), driver="COG", BLOCKSIZE=256
    )
    shutil.copyfile(shared_data / "cogeo.tif", root / "cogeo.tif")
    (root / "notes.tif").write_text("not a raster\n" * 100)
    return root


@pytest.fixture(scope="module")
def bucket(moto: MotoS3, cogs: pathlib.Path) -> str:
    """rasters/rgb.tif, rasters/sub/cogeo.tif, rasters/notes.txt and other/notes.tif."""
    return moto.bucket(
        {
            "rasters/rgb.tif": cogs / "rgb.tif",
            "rasters/sub/cogeo.tif": cogs / "cogeo.tif",
            "rasters/readme.txt": cogs / "notes.tif",
            "other/notes.tif": cogs / "notes.tif",
        }
    )


@pytest.fixture(autouse=True)
def s3_env(
    moto: MotoS3, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """This process: the workers' GDAL settings, without retries; the moto store reached by
    ``AWS_ENDPOINT_URL`` and its keys; nothing else of AWS."""
    for name in CLEARED_AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    env = {
        **worker_env({"GDAL_HTTP_MAX_RETRY": "0", "GDAL_HTTP_TIMEOUT": "10"}),
        **offline_aws_env(tmp_path_factory.mktemp("home")),
        **moto.env(),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_aws_endpoint_url_becomes_gdal_s3_settings() -> None:
    assert endpoint_settings({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}) == {
        "AWS_S3_ENDPOINT": "127.0.0.1:9000",
        "AWS_HTTPS": "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
    }
    assert endpoint_settings({"AWS_ENDPOINT_URL": "https://s3.example.org/base/"}) == {
        "AWS_S3_ENDPOINT": "s3.example.org/base",
        "AWS_HTTPS": "YES",
        "AWS_VIRTUAL_HOSTING": "FALSE",
    }
    # the S3-specific variable wins, as in boto3
    both = {"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_S3": "https://b:2"}
    assert endpoint_settings(both)["AWS_S3_ENDPOINT"] == "b:2"


def test_gdal_s3_variables_set_by_the_user_are_kept() -> None:
    url = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}
    assert endpoint_settings({**url, "AWS_S3_ENDPOINT": "other:1"}) == {}
    assert endpoint_settings({**url, "AWS_VIRTUAL_HOSTING": "TRUE", "AWS_HTTPS": "YES"}) == {
        "AWS_S3_ENDPOINT": "127.0.0.1:9000"
    }
    assert endpoint_settings({}) == {}


def test_a_malformed_endpoint_url_is_a_config_error() -> None:
    with pytest.raises(pipeline.ConfigError, match=r"AWS_ENDPOINT_URL='127\.0\.0\.1:9000'"):
        endpoint_settings({"AWS_ENDPOINT_URL": "127.0.0.1:9000"})


@pytest.mark.parametrize(("key", "name"), [("rasters/rgb.tif", "rgb.tif"),
                                           ("rasters/sub/cogeo.tif", "cogeo.tif")])  # fmt: skip
def test_open_from_s3_equals_the_local_open(
    bucket: str, cogs: pathlib.Path, key: str, name: str
) -> None:
    assert_open_equals_local(f"s3://{bucket}/{key}", cogs / name, f"/vsis3/{bucket}/{key}")


def test_an_overview_and_an_overview_aware_reproject_read_remotely(
    bucket: str, cogs: pathlib.Path
) -> None:
    url = f"s3://{bucket}/rasters/rgb.tif"
    overview = pipeline.open_raster(url, overview_level=1)
    expected = pipeline.open_raster(cogs / "rgb.tif", overview_level=1)
    assert overview.shape == expected.shape and overview.chunks == expected.chunks
    np.testing.assert_array_equal(overview.values, expected.values)
    # 1500 m pixels (the file's are ~300 m): the warp reads an overview
    remote = pipeline.reproject(pipeline.open_raster(url), "EPSG:3857", resolution=1500.0)
    local = pipeline.reproject(
        pipeline.open_raster(cogs / "rgb.tif"), "EPSG:3857", resolution=1500.0
    )
    assert remote.rio.transform() == local.rio.transform()
    np.testing.assert_array_equal(remote.values, local.values)


def test_no_sign_request_reads_a_public_bucket_without_keys(
    moto: MotoS3, cogs: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    public = moto.bucket({"rgb.tif": cogs / "rgb.tif"}, public=True)
    private = moto.bucket({"rgb.tif": cogs / "rgb.tif"})
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_NO_SIGN_REQUEST", "YES")
    da = pipeline.open_raster(f"s3://{public}/rgb.tif")
    np.testing.assert_array_equal(da.values, pipeline.open_raster(cogs / "rgb.tif").values)
    with pytest.raises(pipeline.RasterInputError) as info:
        pipeline.open_raster(f"s3://{private}/rgb.tif")
    assert str(info.value) == f"s3://{private}/rgb.tif: access denied (HTTP 403): check credentials"


def test_cli_reproject_from_s3_equals_the_local_run(
    runner, bucket: str, cogs: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    outputs = {}
    for label, src in (("s3", f"s3://{bucket}/rasters/rgb.tif"), ("local", str(cogs / "rgb.tif"))):
        out = tmp_path / f"{label}.tif"
        argv = ["reproject", src, str(out), "--dst-crs", "EPSG:3857", "--no-progress"]
        result = runner.invoke(cli, argv, prog_name="pipeline")
        assert result.exit_code == 0, result.output
        outputs[label] = out
    with rasterio.open(outputs["s3"]) as a, rasterio.open(outputs["local"]) as b:
        assert a.profile == b.profile
        np.testing.assert_array_equal(a.read(), b.read())


def test_cli_compute_and_verify_read_s3(
    runner, bucket: str, cogs: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    url = f"s3://{bucket}/rasters/rgb.tif"
    out = tmp_path / "reversed.tif"
    argv = ["compute", url, str(out), "--kernel", "reverse-bands", "--no-progress"]
    result = runner.invoke(cli, argv, prog_name="pipeline")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as o, rasterio.open(cogs / "rgb.tif") as s:
        np.testing.assert_array_equal(o.read(), s.read()[::-1])
    result = runner.invoke(cli, ["verify", "--cog", url], prog_name="pipeline")
    assert result.exit_code == 0, result.output


def _rows(report: pathlib.Path) -> dict[str, dict[str, str]]:
    rows = map(json.loads, report.read_text().splitlines())
    return {r["input"]: r for r in rows}


@pytest.mark.cluster
def test_batch_over_an_s3_prefix_equals_the_local_run(
    runner, bucket: str, cogs: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    local = tmp_path / "local"
    (local / "sub").mkdir(parents=True)
    shutil.copyfile(cogs / "rgb.tif", local / "rgb.tif")
    shutil.copyfile(cogs / "cogeo.tif", local / "sub" / "cogeo.tif")
    common = ["--dst-crs", "EPSG:3857", "--no-progress", "--workers", "1", "--threads", "2"]
    common += ["--dashboard-address", "127.0.0.1:0"]
    s3_out, local_out, report = tmp_path / "s3", tmp_path / "lo", tmp_path / "r.jsonl"
    argv = ["batch", f"s3://{bucket}/rasters/", "-o", str(s3_out), "--report", str(report)]
    result = runner.invoke(cli, argv + common, prog_name="pipeline")
    assert result.exit_code == 0, result.output
    # every object with a raster name under the prefix, at any depth; readme.txt is not one
    assert set(_rows(report)) == {
        f"s3://{bucket}/rasters/rgb.tif",
        f"s3://{bucket}/rasters/sub/cogeo.tif",
    }
    argv = ["batch", str(local), "--recursive", "-o", str(local_out)]
    result = runner.invoke(cli, argv + common, prog_name="pipeline")
    assert result.exit_code == 0, result.output
    for rel in ("rgb_3857.tif", "sub/cogeo_3857.tif"):  # the key's sub-prefix is mirrored
        with rasterio.open(s3_out / rel) as a, rasterio.open(local_out / rel) as b:
            assert a.profile == b.profile
            np.testing.assert_array_equal(a.read(), b.read())


@pytest.mark.cluster
def test_batch_from_a_list_of_s3_urls_fails_the_bad_ones_alone(
    runner, bucket: str, tmp_path: pathlib.Path
) -> None:
    good = f"s3://{bucket}/rasters/rgb.tif"
    missing = f"s3://{bucket}/rasters/missing.tif"
    not_raster = f"s3://{bucket}/other/notes.tif"
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"{good}\n{missing}\n# a comment\n{not_raster}\n")
    report = tmp_path / "r.jsonl"
    argv = ["batch", "--from-list", str(listing), "-o", str(tmp_path / "out"), "--dst-crs"]
    argv += ["EPSG:3857", "--no-progress", "--workers", "1", "--threads", "2"]
    argv += ["--dashboard-address", "127.0.0.1:0", "--report", str(report)]
    result = runner.invoke(cli, argv, prog_name="pipeline")
    assert result.exit_code == 1, result.output
    rows = _rows(report)
    assert {k: r["status"] for k, r in rows.items()} == {
        good: "done",
        missing: "failed",
        not_raster: "failed",
    }
    assert "not found" in rows[missing]["error"]
    assert "not a raster GDAL can read" in rows[not_raster]["error"]
    assert all("\n" not in r["error"] for r in rows.values())
    assert (tmp_path / "out" / "rgb_3857.tif").is_file()


def test_a_missing_key_is_one_line_naming_the_url(runner, bucket: str, tmp_path) -> None:
    url = f"s3://{bucket}/rasters/missing.tif"
    argv = ["reproject", url, str(tmp_path / "o.tif"), "--dst-crs", "EPSG:3857"]
    result = runner.invoke(cli, argv, prog_name="pipeline")
    assert result.exit_code == 1
    assert result.output.startswith(f"pipeline: error: {url}: not found")
    assert result.output.count("\n") == 1


def test_a_missing_bucket_is_one_line(runner, tmp_path) -> None:
    url = "s3://pipeline-no-such-bucket/a.tif"
    argv = ["reproject", url, str(tmp_path / "o.tif"), "--dst-crs", "EPSG:3857"]
    result = runner.invoke(cli, argv, prog_name="pipeline")
    assert result.exit_code == 1
    assert result.output == f"pipeline: error: {url}: not found (no such bucket)\n"


def test_listing_a_missing_bucket_is_a_usage_error(runner, tmp_path) -> None:
    argv = ["batch", "s3://pipeline-no-such-bucket/x/", "-o", str(tmp_path), "--dst-crs", "3857"]
    result = runner.invoke(cli, argv, prog_name="pipeline")
    assert result.exit_code == 2, result.output
    assert "s3://pipeline-no-such-bucket/x/: cannot list (no such bucket)" in result.output


def test_an_empty_prefix_is_a_usage_error(runner, bucket: str, tmp_path) -> None:
    argv = ["batch", f"s3://{bucket}/nothing/", "-o", str(tmp_path), "--dst-crs", "EPSG:3857"]
    result = runner.invoke(cli, argv, prog_name="pipeline")
    assert result.exit_code == 2, result.output
    assert f"no input rasters found under s3://{bucket}/nothing/" in result.output


def test_profile_credentials_are_read_from_the_aws_files(
    moto: MotoS3, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = moto.keys
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    aws = pathlib.Path(os.environ["HOME"]) / ".aws"
    aws.mkdir(exist_ok=True)
    (aws / "credentials").write_text(
        f"[pipeline-test]\naws_access_key_id = {keys['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {keys['AWS_SECRET_ACCESS_KEY']}\n"
    )
    monkeypatch.setenv("AWS_PROFILE", "pipeline-test")
    da = pipeline.open_raster(f"s3://{bucket}/rasters/sub/cogeo.tif", overview_level=2)
    assert int(da.sum()) > 0


def test_listing_without_boto3_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from pipeline.io.cloud import s3_client

    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(pipeline.RasterInputError, match=r"pip install 'raster-pipeline\[s3\]'"):
        s3_client()


def test_listed_keys_mirror_their_sub_prefixes_and_collisions_are_refused(tmp_path) -> None:
    from pipeline.batch_plan import plan_outputs
    from pipeline.errors import BatchUsageError

    keys = ["s3://b/p/x.tif", "s3://b/p/sub/x.tif"]
    jobs = plan_outputs(keys, str(tmp_path), tmp_path / "out", "EPSG:3857", url_roots=["s3://b/p/"])
    assert [j.output for j in jobs] == [
        str(tmp_path / "out" / "x_3857.tif"),
        str(tmp_path / "out" / "sub" / "x_3857.tif"),
    ]
    with pytest.raises(BatchUsageError, match="would both be written to"):
        plan_outputs(keys, str(tmp_path), tmp_path / "out", "EPSG:3857")  # not listed: flat
    with pytest.raises(BatchUsageError, match=r"a key with '\.\.'"):
        plan_outputs(["s3://b/p/../x.tif"], str(tmp_path), tmp_path, 3857, url_roots=["s3://b/p/"])


def test_a_public_prefix_is_listed_without_keys(
    moto: MotoS3, cogs: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.batch_plan import discover

    name = moto.bucket({"p/a.tif": cogs / "rgb.tif", "p/q/b.tif": cogs / "rgb.tif"}, public=True)
    moto.client().put_bucket_acl(Bucket=name, ACL="public-read")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_NO_SIGN_REQUEST", "YES")
    found = discover(f"s3://{name}/p")  # no trailing slash: a name without a raster suffix
    assert found.files == [f"s3://{name}/p/a.tif", f"s3://{name}/p/q/b.tif"]
    assert found.url_roots == (f"s3://{name}/p/",)
