"""S3 credentials: checked by a signature-checking moto server, never printed, and given to a
remote cluster's workers only with ``--forward-credentials`` (real ``dask scheduler`` and
``dask worker`` processes on 127.0.0.1, the worker started without any credentials)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import uuid
from collections.abc import Iterator

import dask
import pytest
import rasterio.shutil

import pipeline
from pipeline.cli import cli
from pipeline.io.cloud import forwarded_credentials
from pipeline.io.gdal_env import worker_env
from tests.procs import dask_command, stop_processes, wait_for_scheduler_file
from tests.servers import CLEARED_AWS_VARS, MotoS3, offline_aws_env
from tests.test_cli import run_cli

#: A secret that must never appear in any output or log.
SECRET = f"pipeline-secret-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def rgb_cog(shared_data: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("cred") / "rgb.tif"
    rasterio.shutil.copy(str(shared_data / "RGB.byte.tif"), str(path), driver="COG")
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("home")


def _client_env(moto: MotoS3, home: pathlib.Path, secret: str) -> dict[str, str]:
    return {
        **worker_env({"GDAL_HTTP_MAX_RETRY": "0", "GDAL_HTTP_TIMEOUT": "10"}),
        **offline_aws_env(home),
        **moto.env(),
        "AWS_SECRET_ACCESS_KEY": secret,
    }


@pytest.fixture
def clean_aws(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in CLEARED_AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# --- a store that checks signatures ---------------------------------------------------------


@pytest.fixture(scope="module")
def signed_moto(rgb_cog: pathlib.Path) -> Iterator[tuple[MotoS3, str]]:
    server = MotoS3(check_signatures=True).start()
    try:
        yield server, server.bucket({"rgb.tif": rgb_cog, "other.tif": rgb_cog})
    finally:
        server.stop()


def test_a_wrong_secret_is_access_denied_in_one_line_without_the_secret(
    signed_moto: tuple[MotoS3, str], home: pathlib.Path, tmp_path: pathlib.Path, clean_aws
) -> None:
    moto, bucket = signed_moto
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_AWS_VARS}
    good = {**env, **_client_env(moto, home, moto.keys["AWS_SECRET_ACCESS_KEY"])}
    ok = run_cli("verify", f"s3://{bucket}/rgb.tif", env=good)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    url = f"s3://{bucket}/other.tif"
    bad = {**good, "AWS_SECRET_ACCESS_KEY": SECRET}
    for flags in ([], ["-v"]):
        proc = run_cli(*flags, "reproject", url, tmp_path / "o.tif", "--dst-crs", "3857", env=bad)
        assert proc.returncode == 1
        # -v adds GDAL's log lines before it
        assert proc.stderr.endswith(
            f"\npipeline: error: {url}: access denied: check credentials\n"
            if flags
            else f"pipeline: error: {url}: access denied: check credentials\n"
        )
        assert SECRET not in proc.stdout + proc.stderr
    debug = run_cli("--debug", "reproject", url, tmp_path / "o.tif", "--dst-crs", "3857", env=bad)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert SECRET not in debug.stdout + debug.stderr


# --- a remote cluster -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def remote_cluster(
    tmp_path_factory: pytest.TempPathFactory, moto: MotoS3, home: pathlib.Path
) -> Iterator[tuple[str, pathlib.Path]]:
    """A scheduler and a worker on 127.0.0.1; the worker has no AWS credentials of its own
    (only the store's endpoint, which is not a secret) and an empty home folder."""
    tmp = tmp_path_factory.mktemp("remote")
    log_path = tmp / "log"
    sched_file = tmp / "sched.json"
    worker_env_vars = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    worker_env_vars.update(offline_aws_env(home))
    worker_env_vars["AWS_ENDPOINT_URL"] = moto.endpoint
    log = open(log_path, "wb")  # noqa: SIM115
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            subprocess.Popen(
                dask_command("scheduler", "--host", "127.0.0.1", "--port", "0",
                             "--no-dashboard", "--scheduler-file", str(sched_file)),
                stdout=log, stderr=subprocess.STDOUT, env=worker_env_vars,
            )
        )  # fmt: skip
        address = wait_for_scheduler_file(sched_file, procs[0])["address"]
        procs.append(
            subprocess.Popen(
                dask_command("worker", address, "--host", "127.0.0.1", "--nthreads", "2",
                             "--no-dashboard", "--memory-limit", "2GiB"),
                stdout=log, stderr=subprocess.STDOUT, env=worker_env_vars,
            )
        )  # fmt: skip
        yield address, log_path
    finally:
        stop_processes(procs)
        log.close()


def _worker_secret(client) -> list[str | None]:
    # a lambda is pickled by value; os.environ.get would carry this process's environ along
    return list(client.run(lambda: os.environ.get("AWS_SECRET_ACCESS_KEY")).values())


@pytest.mark.cluster
def test_remote_workers_get_credentials_only_with_forward_credentials(
    runner, remote_cluster, moto: MotoS3, rgb_cog, home, tmp_path: pathlib.Path, clean_aws
) -> None:
    address, log_path = remote_cluster
    for name, value in _client_env(moto, home, SECRET).items():
        clean_aws.setenv(name, value)
    # two objects: GDAL on the worker caches what it read per URL
    bucket = moto.bucket({"first.tif": rgb_cog, "second.tif": rgb_cog})
    outputs = []

    def batch(key: str, *flags: str) -> dict[str, str]:
        listing = tmp_path / f"{key}.txt"
        listing.write_text(f"s3://{bucket}/{key}\n")
        report = tmp_path / f"{key}.jsonl"
        argv = ["batch", "--from-list", str(listing), "-o", str(tmp_path / "out"), "--dst-crs"]
        argv += ["EPSG:3857", "--no-progress", "--scheduler", address, "--report", str(report)]
        result = runner.invoke(cli, [*argv, *flags], prog_name="pipeline")
        outputs.append(result.output)
        row: dict[str, str] = json.loads(report.read_text())
        return row

    forwarded = batch("first.tif", "--forward-credentials")
    assert forwarded["status"] == "done", forwarded
    assert "AWS settings forwarded to workers (values not shown)" in outputs[-1]
    assert "AWS_SECRET_ACCESS_KEY" in outputs[-1]
    # a later client that does not ask takes them away again (the plugin's teardown)
    plain = batch("second.tif")
    assert plain["status"] == "failed"
    assert plain["error"].startswith(f"s3://{bucket}/second.tif: ")
    assert "no credentials" in plain["error"], plain["error"]
    assert "AWS settings forwarded" not in outputs[-1]
    with pipeline.connect(address, quiet=True) as client:
        assert _worker_secret(client) == [None]
    for text in (*outputs, log_path.read_text(errors="replace")):
        assert SECRET not in text


@pytest.mark.cluster
def test_the_config_key_forwards_credentials(remote_cluster, moto: MotoS3, home, clean_aws) -> None:
    address, _ = remote_cluster
    for name, value in _client_env(moto, home, SECRET).items():
        clean_aws.setenv(name, value)
    with (
        dask.config.set({"pipeline.forward-credentials": True}),
        pipeline.connect(address, quiet=True) as client,
    ):
        assert _worker_secret(client) == [SECRET]
    with pipeline.connect(address, quiet=True) as client:
        assert _worker_secret(client) == [None]


def test_a_profile_is_forwarded_as_its_keys(tmp_path: pathlib.Path, clean_aws) -> None:
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text(
        f"[other]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = {SECRET}\n"
    )
    for name, value in offline_aws_env(tmp_path).items():
        clean_aws.setenv(name, value)
    clean_aws.setenv("AWS_PROFILE", "other")
    clean_aws.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    forwarded = forwarded_credentials()
    assert forwarded["AWS_ACCESS_KEY_ID"] == "AKIAPROFILE"
    assert forwarded["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert forwarded["AWS_S3_ENDPOINT"] == "127.0.0.1:9000"
    clean_aws.setenv("AWS_NO_SIGN_REQUEST", "YES")
    assert "AWS_SECRET_ACCESS_KEY" not in forwarded_credentials()
