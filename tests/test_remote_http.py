"""Remote inputs read with HTTP range requests, against a real server on 127.0.0.1.

The server (`tests.servers.RangeServer`) honours single and multi-range ``Range`` requests,
counts the requests and bytes it serves, and answers 404/403 for chosen paths. Each test has
its own server whose URLs carry a fresh token, so GDAL's process-wide /vsicurl/ cache never
serves one test what another test read.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import urllib.request
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from click.testing import CliRunner

import pipeline
from pipeline.cli import cli
from pipeline.errors import RasterInputError
from pipeline.io.files import gdal_path, is_remote
from pipeline.io.gdal_env import worker_env
from pipeline.verify import verify_raster
from tests.servers import RangeServer, assert_open_equals_local, closed_port, serving


@pytest.fixture(scope="module")
def cogs(shared_data: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """cogeo.tif (a COG of 1024x1024x3, 512 blocks, six overviews), a COG of RGB.byte.tif
    (256 blocks, two overviews) and a text file named like a raster."""
    root = tmp_path_factory.mktemp("served")
    shutil.copyfile(shared_data / "cogeo.tif", root / "cogeo.tif")
    rasterio.shutil.copy(
        str(shared_data / "RGB.byte.tif"), str(root / "rgb.tif"), driver="COG", BLOCKSIZE=256
    )
    (root / "notes.tif").write_text("not a raster\n" * 100)
    return root


@pytest.fixture(autouse=True)
def gdal_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process gets the workers' GDAL settings, without retries (failures are fast)."""
    for name, value in worker_env({"GDAL_HTTP_MAX_RETRY": "0", "GDAL_HTTP_TIMEOUT": "10"}).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def server(cogs: pathlib.Path) -> Iterator[RangeServer]:
    with serving(cogs) as srv:
        srv.errors["forbidden.tif"] = 403
        yield srv


def test_the_server_answers_single_and_multi_range_requests(server: RangeServer) -> None:
    data = (server.root / "rgb.tif").read_bytes()
    one = urllib.request.Request(server.url("rgb.tif"), headers={"Range": "bytes=10-19"})
    with urllib.request.urlopen(one, timeout=10) as resp:
        assert resp.status == 206 and resp.read() == data[10:20]
    two = urllib.request.Request(server.url("rgb.tif"), headers={"Range": "bytes=0-3,100-103"})
    with urllib.request.urlopen(two, timeout=10) as resp:
        body = resp.read()
        assert resp.headers.get_content_type() == "multipart/byteranges"
    assert data[0:4] in body and data[100:104] in body and b"bytes 100-103/" in body
    assert server.bytes_served == 10 + len(body)


def test_urls_map_to_gdal_paths() -> None:
    assert gdal_path("https://h/a.tif") == "/vsicurl/https://h/a.tif"
    assert gdal_path("http://h:8/a.tif?x=1") == "/vsicurl/http://h:8/a.tif?x=1"
    # mapped as GDAL names them; not exercised against a real object store here
    assert gdal_path("s3://bucket/key.tif") == "/vsis3/bucket/key.tif"
    assert gdal_path("gs://bucket/key.tif") == "/vsigs/bucket/key.tif"
    assert gdal_path("az://container/key.tif") == "/vsiaz/container/key.tif"
    assert gdal_path("/vsicurl/https://h/a.tif") == "/vsicurl/https://h/a.tif"
    assert gdal_path("data/a.tif") == "data/a.tif"
    assert is_remote("/vsizip//vsicurl/https://h/a.zip/a.tif")
    assert not is_remote("data/http/a.tif")


@pytest.mark.parametrize("name", ["cogeo.tif", "rgb.tif"])
@pytest.mark.parametrize("form", ["url", "vsicurl"])
def test_open_over_http_equals_the_local_open(
    server: RangeServer, cogs: pathlib.Path, name: str, form: str
) -> None:
    url = server.url(name) if form == "url" else "/vsicurl/" + server.url(name)
    assert_open_equals_local(url, cogs / name, "/vsicurl/" + server.url(name))


def test_a_window_and_an_overview_fetch_a_fraction_of_the_file(
    server: RangeServer, cogs: pathlib.Path
) -> None:
    size = (cogs / "rgb.tif").stat().st_size
    remote = pipeline.open_raster(server.url("rgb.tif"))
    window = remote[:, :256, :256].values
    np.testing.assert_array_equal(window, pipeline.open_raster(cogs / "rgb.tif")[:, :256, :256])
    assert server.bytes_served < size / 4, (server.bytes_served, size)
    server.reset_counts()
    overview = pipeline.open_raster(server.url("rgb.tif"), overview_level=1)
    expected = pipeline.open_raster(cogs / "rgb.tif", overview_level=1)
    assert overview.shape == expected.shape and overview.chunks == expected.chunks
    np.testing.assert_array_equal(overview.values, expected.values)
    assert overview.rio.transform() == expected.rio.transform()
    assert server.bytes_served < size / 4, (server.bytes_served, size)
    assert all(method in {"GET", "HEAD"} for method, _, _ in server.requests)


@pytest.mark.parametrize("resolution", [None, 1500.0])  # 1500 m (pixels ~300 m): an overview
def test_reproject_of_the_remote_cog_equals_the_local_one(
    server: RangeServer, cogs: pathlib.Path, resolution: float | None
) -> None:
    kwargs = {"resolution": resolution} if resolution else {}
    remote = pipeline.reproject(pipeline.open_raster(server.url("rgb.tif")), "EPSG:3857", **kwargs)
    local = pipeline.reproject(pipeline.open_raster(cogs / "rgb.tif"), "EPSG:3857", **kwargs)
    assert remote.shape == local.shape and min(remote.shape[1:]) > 50
    assert remote.rio.transform() == local.rio.transform()
    np.testing.assert_array_equal(remote.values, local.values)
    if resolution:
        size = (cogs / "rgb.tif").stat().st_size
        assert server.bytes_served < size / 4, "the overview should be read, not the full image"


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("missing.tif", "not found (HTTP 404)"),
        ("forbidden.tif", "access denied (HTTP 403): check credentials"),
        ("notes.tif", "not a raster GDAL can read"),
        ("page.html", "not a name GDAL fetches (CPL_VSIL_CURL_ALLOWED_EXTENSIONS="),
    ],
)
def test_bad_urls_raise_one_line_naming_url_and_cause(
    server: RangeServer, name: str, cause: str
) -> None:
    url = server.url(name)
    with pytest.raises(RasterInputError) as info:
        pipeline.open_raster(url)
    message = str(info.value)
    assert message.startswith(f"{url}: ") and cause in message
    assert "\n" not in message


def test_connection_refused_is_one_line_naming_the_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}/{uuid.uuid4().hex}/a.tif"
    with pytest.raises(RasterInputError) as info:
        pipeline.open_raster(url)
    message = str(info.value)
    assert message.startswith(f"{url}: connection refused") and "\n" not in message


def test_verify_a_remote_cog(server: RangeServer, cogs: pathlib.Path) -> None:
    result = verify_raster(server.url("rgb.tif"), cog=True)
    assert result.ok, result.problems
    assert result.shape == verify_raster(cogs / "rgb.tif").shape
    missing = verify_raster(server.url("missing.tif"))
    assert not missing.ok and missing.problems == ["not found (HTTP 404)"]
    cli_result = CliRunner().invoke(cli, ["verify", server.url("cogeo.tif")], prog_name="pipeline")
    assert cli_result.exit_code == 0, cli_result.output


@pytest.mark.cluster
def test_batch_from_a_list_of_urls_equals_the_local_run(
    server: RangeServer, cogs: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    local = tmp_path / "local"
    local.mkdir()
    for name in ("cogeo.tif", "rgb.tif"):
        shutil.copyfile(cogs / name, local / name)
    shutil.copyfile(cogs / "rgb.tif", server.root / "remote_rgb.tif")
    shutil.copyfile(cogs / "cogeo.tif", server.root / "remote_cogeo.tif")
    listing = tmp_path / "inputs.txt"
    listing.write_text(
        "\n".join(
            [
                str(local / "cogeo.tif"),
                str(local / "rgb.tif"),
                server.url("remote_cogeo.tif"),
                "/vsicurl/" + server.url("remote_rgb.tif"),
                server.url("missing.tif"),
            ]
        )
        + "\n"
    )
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    argv = ["batch", "--from-list", str(listing), "-o", str(out), "--dst-crs", "EPSG:3857"]
    argv += ["--report", str(report), "--workers", "1", "--threads", "2", "--no-progress"]
    argv += ["--dashboard-address", "127.0.0.1:0"]
    result = CliRunner().invoke(cli, argv, prog_name="pipeline")
    assert result.exit_code == 1, result.output
    rows = {
        pathlib.Path(r["input"]).name: r for r in map(json.loads, report.read_text().splitlines())
    }
    assert {n: r["status"] for n, r in rows.items()} == {
        "cogeo.tif": "done",
        "rgb.tif": "done",
        "remote_cogeo.tif": "done",
        "remote_rgb.tif": "done",
        "missing.tif": "failed",
    }
    error = rows["missing.tif"]["error"]
    assert "\n" not in error and "not found (HTTP 404)" in error and "missing.tif" in error
    for name in ("cogeo", "rgb"):
        with (
            rasterio.open(out / f"{name}_3857.tif") as a,
            rasterio.open(out / f"remote_{name}_3857.tif") as b,
        ):
            assert a.profile == b.profile
            np.testing.assert_array_equal(a.read(), b.read())
    assert not os.path.exists(out / "missing_3857.tif")


def test_readdir_true_costs_no_more_requests_than_empty_dir(
    server: RangeServer, cogs: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pipeline.gdal-env keeps TRUE (local sidecars such as .ovr and .aux.xml are still found):
    # over /vsicurl/ it must not probe for sidecars more than the cloud advice, EMPTY_DIR.
    shutil.copyfile(cogs / "rgb.tif", server.root / "rgb_copy.tif")
    heads = {}
    for value, name in (("TRUE", "rgb.tif"), ("EMPTY_DIR", "rgb_copy.tif")):
        monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", value)
        server.reset_counts()
        pipeline.open_raster(server.url(name), overview_level=0).compute()
        # no request for another name (rgb.tif.ovr, rgb.tif.aux.xml, the folder)
        assert {n for _, n, _ in server.requests} == {name}, server.requests
        heads[value] = sum(method == "HEAD" for method, _, _ in server.requests)
    assert heads["TRUE"] == heads["EMPTY_DIR"] == 1


@pytest.fixture(scope="module")
def big_cog(cogs: pathlib.Path) -> pathlib.Path:
    """A 4096 x 4096 x 3 COG in 256-pixel blocks (16 x 16 blocks), UTM 18N like RGB.byte."""
    path = cogs / "big.tif"
    y, x = np.mgrid[0:4096, 0:4096].astype(np.uint32)
    data = np.stack([(x * 7 + y) % 251, (x ^ y) % 253, (x * y) % 241]).astype(np.uint8)
    transform = rasterio.Affine(30, 0, 300000, 0, -30, 4500000)
    profile = {"driver": "GTiff", "width": 4096, "height": 4096, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32618", "transform": transform}  # fmt: skip
    with rasterio.MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(data)
        rasterio.shutil.copy(
            mem.name, str(path), driver="COG", BLOCKSIZE=256, COMPRESS="DEFLATE",
            OVERVIEWS="NONE",
        )  # fmt: skip
    return path


def test_a_remote_window_costs_one_request_per_block_row_and_no_more_than_rioxarray(
    server: RangeServer, big_cog: pathlib.Path
) -> None:
    # The middle quarter (2048 x 2048 pixels: 8 x 8 or 9 x 9 blocks) to EPSG:3857: the default
    # destination chunks of a remote source are strips as wide as the output, so each block
    # row of the source window is fetched with one request (GDAL merges consecutive blocks).
    import rioxarray
    from rasterio.warp import calculate_default_transform, transform_bounds

    with rasterio.open(big_cog) as ds:
        res = calculate_default_transform(ds.crs, "EPSG:3857", ds.width, ds.height, *ds.bounds)
        crs, src_transform = ds.crs, ds.transform
    window = rasterio.windows.Window(1024, 1024, 2048, 2048)
    wb = rasterio.windows.bounds(window, src_transform)
    left, bottom, right, top = transform_bounds(crs, "EPSG:3857", *wb)
    r = res[0].a
    bounds = (left, top - round((top - bottom) / r) * r, left + round((right - left) / r) * r, top)
    out = pipeline.reproject(
        pipeline.open_raster(server.url(big_cog.name)), "EPSG:3857", resolution=r, bounds=bounds
    )
    assert out.sizes["x"] > 2048 and len(out.chunks[2]) == 1, out.chunks
    server.reset_counts()
    values = out.values
    ours = [rng for method, _, rng in server.requests if method == "GET"]
    # the blocks under the output's footprint, in the source
    clip = transform_bounds("EPSG:3857", crs, *bounds, densify_pts=21)
    rows = rasterio.windows.from_bounds(*clip, transform=src_transform)
    block_rows = int(rows.row_off + rows.height) // 256 - int(rows.row_off) // 256 + 1
    assert len(ours) <= block_rows + 1, ours  # + the header

    server.token = uuid.uuid4().hex[:12]  # nothing served from GDAL's cache of the first run
    server.reset_counts()
    theirs = rioxarray.open_rasterio(server.url(big_cog.name), chunks={"x": 1024, "y": 1024})
    theirs = theirs.rio.clip_box(*clip).rio.reproject(
        "EPSG:3857", transform=out.rio.transform(), shape=out.shape[1:]
    )
    theirs.values  # noqa: B018
    assert len(ours) <= sum(method == "GET" for method, _, _ in server.requests)
    # and the pixels are the same as the local file's
    local = pipeline.reproject(
        pipeline.open_raster(big_cog), "EPSG:3857", resolution=r, bounds=bounds
    )
    np.testing.assert_array_equal(values, local.values)
