"""Faults of a remote input, against `tests.servers.RangeServer` on 127.0.0.1: each bad URL
is one error line naming it and the cause (exit 1), and in a batch fails alone.

GDAL gets a 1 s ``GDAL_HTTP_TIMEOUT``, ``GDAL_HTTP_MAX_RETRY=2`` and a 0.1 s retry delay
(through ``pipeline.gdal-env``, as a user would set them) so the slow cases stay fast.
"""

from __future__ import annotations

import json
import pathlib
import shutil
from collections.abc import Iterator

import dask
import numpy as np
import pytest
import rasterio
import rasterio.shutil

from pipeline.cli import cli
from pipeline.io.gdal_env import worker_env
from tests.servers import RangeServer, closed_port, serving

SETTINGS = {"GDAL_HTTP_TIMEOUT": "1", "GDAL_HTTP_MAX_RETRY": "2", "GDAL_HTTP_RETRY_DELAY": "0.1"}

#: File name -> what the one error line says after the URL.
CAUSES = {
    "missing.tif": "not found (HTTP 404)",
    "forbidden.tif": "access denied (HTTP 403): check credentials",
    "refused": "connection refused: is the server up?",
    "reset.tif": "connection lost during the read (got ",
    "slow.tif": "timed out (",
    "notes.tif": "not a raster GDAL can read",
}


@pytest.fixture(scope="module")
def served(shared_data: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("faults")
    rasterio.shutil.copy(
        str(shared_data / "RGB.byte.tif"), str(root / "rgb.tif"), driver="COG", BLOCKSIZE=256
    )
    for name in ("reset.tif", "flaky.tif", "slow.tif"):
        shutil.copyfile(root / "rgb.tif", root / name)
    (root / "notes.tif").write_text("not a raster\n" * 100)
    return root


@pytest.fixture(autouse=True)
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The settings in this process (opening inputs) and in ``pipeline.gdal-env`` (what
    ``run_here`` and workers apply)."""
    for name, value in worker_env(SETTINGS).items():
        monkeypatch.setenv(name, value)
    with dask.config.set({f"pipeline.gdal-env.{k}": v for k, v in SETTINGS.items()}):
        yield


@pytest.fixture
def server(served: pathlib.Path) -> Iterator[RangeServer]:
    with serving(served) as srv:
        srv.errors["forbidden.tif"] = 403
        srv.resets["reset.tif"] = range(1, 10**9)  # every block read
        srv.resets["flaky.tif"] = {1}  # the first block read only
        srv.delays["slow.tif"] = 3.0
        yield srv


def _url(server: RangeServer, name: str) -> str:
    if name == "refused":
        return f"http://127.0.0.1:{closed_port()}/{server.token}/a.tif"
    return server.url(name)


@pytest.mark.parametrize("name", list(CAUSES))
def test_reproject_of_a_bad_url_is_one_error_line(
    runner, server: RangeServer, tmp_path: pathlib.Path, name: str
) -> None:
    url = _url(server, name)
    argv = ["reproject", url, str(tmp_path / "o.tif"), "--dst-crs", "EPSG:3857", "--no-progress"]
    result = runner.invoke(cli, argv, prog_name="pipeline")
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("pipeline: error:")]
    assert len(errors) == 1, result.output
    assert errors[0].startswith(f"pipeline: error: {url}: ")
    assert CAUSES[name] in errors[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "o.tif").exists()


def test_a_reset_mid_read_is_retried_then_reported(
    runner, server: RangeServer, tmp_path: pathlib.Path
) -> None:
    url = server.url("reset.tif")
    argv = ["reproject", url, str(tmp_path / "o.tif"), "--dst-crs", "EPSG:3857", "--no-progress"]
    result = runner.invoke(cli, argv, prog_name="pipeline")
    assert result.exit_code == 1
    assert "after 2 retries (GDAL_HTTP_MAX_RETRY)" in result.output
    blocks = [r for m, n, r in server.requests if m == "GET" and n == "reset.tif"]
    blocks = [r for r in blocks if not (r or "").startswith("bytes=0-")]
    # the first block range asked for once and retried twice (the partial answer not reused)
    assert blocks and blocks.count(blocks[0]) == 3, blocks


def test_a_reset_that_does_not_recur_is_retried_to_success(
    runner, server: RangeServer, served: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    out = {}
    for label, src in (("remote", server.url("flaky.tif")), ("local", str(served / "rgb.tif"))):
        out[label] = tmp_path / f"{label}.tif"
        argv = ["reproject", src, str(out[label]), "--dst-crs", "EPSG:3857", "--no-progress"]
        result = runner.invoke(cli, argv, prog_name="pipeline")
        assert result.exit_code == 0, result.output
    with rasterio.open(out["remote"]) as a, rasterio.open(out["local"]) as b:
        np.testing.assert_array_equal(a.read(), b.read())
    assert server.count("flaky.tif") >= 3  # header, the cut read, its retry


@pytest.mark.cluster
def test_in_a_batch_each_bad_url_fails_alone(
    runner, server: RangeServer, served: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    urls = {name: _url(server, name) for name in CAUSES}
    shutil.copyfile(served / "rgb.tif", tmp_path / "local.tif")
    good = [server.url("rgb.tif"), server.url("flaky.tif"), str(tmp_path / "local.tif")]
    listing = tmp_path / "inputs.txt"
    listing.write_text("\n".join([*good, *urls.values()]) + "\n")
    report = tmp_path / "report.jsonl"
    argv = ["batch", "--from-list", str(listing), "-o", str(tmp_path / "out"), "--dst-crs"]
    argv += ["EPSG:3857", "--no-progress", "--workers", "1", "--threads", "2", "--report"]
    argv += [str(report), "--dashboard-address", "127.0.0.1:0"]
    result = runner.invoke(cli, argv, prog_name="pipeline")
    assert result.exit_code == 1, result.output
    rows = {r["input"]: r for r in map(json.loads, report.read_text().splitlines())}
    assert [rows[g]["status"] for g in good] == ["done"] * 3
    for name, url in urls.items():
        row = rows[url]
        assert row["status"] == "failed", row
        assert row["error"].startswith(f"{url}: ") and CAUSES[name] in row["error"], row
        assert "\n" not in row["error"]
        assert f"FAILED {url}: " in result.output
