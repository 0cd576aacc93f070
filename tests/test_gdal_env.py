"""GDAL/PROJ settings reach every worker, also after a restart; secrets are never printed."""

from __future__ import annotations

import subprocess
import sys

import dask
import pytest

import pipeline
from pipeline.cluster import run_here
from pipeline.io.gdal_env import current_settings, describe, looks_secret, redact, worker_env

# Remote inputs (https://, /vsicurl/): what GDAL needs to read them with few range requests
CLOUD = {
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.vrt,.ovr,.jp2,.img",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "VSI_CACHE": "TRUE",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_TIMEOUT": "30",
}
NAMES = [
    "GDAL_NUM_THREADS",
    "GDAL_CACHEMAX",
    "PROJ_NETWORK",
    "GDAL_DISABLE_READDIR_ON_OPEN",
    *CLOUD,
]


def _in_task() -> dict[str, str | None]:
    return current_settings(NAMES)


@pytest.mark.cluster
def test_settings_visible_in_tasks_on_process_workers_and_after_restart() -> None:
    expected = {k: worker_env()[k] for k in NAMES}
    with pipeline.connect(
        processes=True,
        n_workers=1,
        threads_per_worker=1,
        dashboard_address="127.0.0.1:0",
        quiet=True,
        gdal_env={"GDAL_CACHEMAX": "123"},
    ) as client:
        expected["GDAL_CACHEMAX"] = "123"
        assert client.submit(_in_task, pure=False).result() == expected
        # GDAL_CACHEMAX must be in the process environment before the worker starts
        pids = client.run(lambda: __import__("os").getpid())
        environ = client.run(lambda: dict(__import__("os").environ))
        assert all(e["GDAL_CACHEMAX"] == "123" for e in environ.values())
        client.restart()
        assert client.run(lambda: __import__("os").getpid()) != pids
        assert client.submit(_in_task, pure=False).result() == expected


def test_cloud_settings_are_defaults_overridable_and_reach_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = worker_env()
    assert {k: env[k] for k in CLOUD} == CLOUD
    # TRUE, not EMPTY_DIR: local sidecars (.ovr, .aux.xml) are still found
    assert env["GDAL_DISABLE_READDIR_ON_OPEN"] == "TRUE"
    assert not any(looks_secret(k) for k in CLOUD)
    with dask.config.set({"pipeline.gdal-env.GDAL_HTTP_TIMEOUT": "5"}):
        assert worker_env()["GDAL_HTTP_TIMEOUT"] == "5"
    assert worker_env({"GDAL_HTTP_MAX_RETRY": "0"})["GDAL_HTTP_MAX_RETRY"] == "0"
    for name in NAMES:  # run_here writes os.environ: restore it after the test
        monkeypatch.setenv(name, "unset")
    with run_here(threads=1, quiet=True):
        assert current_settings(list(CLOUD)) == CLOUD


def test_secret_looking_values_are_redacted() -> None:
    env = {
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "GS_TOKEN": "t0k",
        "AZURE_STORAGE_ACCESS_KEY": "k",
        "GDAL_CACHEMAX": "512",
        "AWS_REGION": "eu-west-1",
    }
    out = redact(env)
    assert (
        out["AWS_SECRET_ACCESS_KEY"] == out["GS_TOKEN"] == out["AZURE_STORAGE_ACCESS_KEY"] == "***"
    )
    assert out["GDAL_CACHEMAX"] == "512" and out["AWS_REGION"] == "eu-west-1"
    assert not looks_secret("GDAL_DISABLE_READDIR_ON_OPEN")
    assert "s3cr3t" not in describe(env)


@pytest.mark.cluster
def test_connect_never_prints_a_secret_value() -> None:
    code = (
        "import pipeline\n"
        "with pipeline.connect(dashboard_address='127.0.0.1:0', "
        "gdal_env={'AWS_SECRET_ACCESS_KEY': 'hunter2-value'}):\n    pass\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "AWS_SECRET_ACCESS_KEY=***" in proc.stderr
    assert "hunter2-value" not in proc.stderr + proc.stdout


def test_a_dask_environment_variable_overrides_a_gdal_setting() -> None:
    # DASK_PIPELINE__GDAL_ENV__GDAL_HTTP_TIMEOUT=5 reaches dask config lower-cased
    with dask.config.set({"pipeline.gdal-env.gdal_http_timeout": "5"}):
        env = worker_env()
    assert env["GDAL_HTTP_TIMEOUT"] == "5" and "gdal_http_timeout" not in env
