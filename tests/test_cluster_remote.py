"""Remote clusters for real, on loopback: TLS with temporary certificates, shared-folder checks."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import dask
import numpy as np
import pytest
import rasterio

import pipeline
from pipeline.errors import ClusterError
from pipeline.preflight import check_folder_visible
from tests.netns_cluster import tls_files
from tests.procs import dask_command, stop_processes, wait_for_scheduler_file

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    """A TLS-only scheduler and worker on 127.0.0.1 with temporary self-signed certificates."""
    tmp_path = tmp_path_factory.mktemp("tls")
    files = tls_files(tmp_path)
    tls_args = [
        "--tls-ca-file",
        files["ca_file"],
        "--tls-cert",
        files["cert"],
        "--tls-key",
        files["key"],
    ]
    sched_file = tmp_path / "sched.json"
    log = open(tmp_path / "log", "wb")  # noqa: SIM115
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            subprocess.Popen(
                dask_command(
                    "scheduler",
                    "--protocol",
                    "tls",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(sched_file),
                    *tls_args,
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        address = wait_for_scheduler_file(sched_file, procs[0])["address"]
        assert address.startswith("tls://127.0.0.1:")
        procs.append(
            subprocess.Popen(
                dask_command(
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "2",
                    "--no-dashboard",
                    "--memory-limit",
                    "2GiB",
                    *tls_args,
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        yield address, files
    finally:
        stop_processes(procs)
        log.close()


def _tls_config(files: dict[str, str]) -> dict[str, object]:
    return {
        "distributed.comm.require-encryption": True,
        "distributed.comm.tls.ca-file": files["ca_file"],
        "distributed.comm.tls.client.cert": files["cert"],
        "distributed.comm.tls.client.key": files["key"],
    }


def test_tls_scheduler_runs_the_job_with_credentials_from_dask_config(
    tls_cluster, shared_data, tmp_path
) -> None:
    address, files = tls_cluster
    with dask.config.set(_tls_config(files)), pipeline.connect(address, quiet=True) as client:
        client.wait_for_workers(1, timeout=60)
        da = pipeline.apply_kernel(
            pipeline.open_raster(shared_data / "RGB.byte.tif"), "reverse-bands"
        )
        out = pipeline.write_raster(da, tmp_path / "tls.tif")
    with rasterio.open(out) as o, rasterio.open(shared_data / "RGB.byte.tif") as s:
        np.testing.assert_array_equal(o.read(), s.read()[::-1])


def test_plain_tcp_client_is_refused_by_the_tls_scheduler(tls_cluster) -> None:
    address, _ = tls_cluster
    plain = address.replace("tls://", "tcp://")
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "3s"}),
        pytest.raises(ClusterError, match="cannot reach the scheduler"),
    ):
        pipeline.connect(plain, quiet=True)


def test_cli_uses_tls_settings_from_the_environment(tls_cluster, shared_data, tmp_path) -> None:
    from tests.test_cli import run_cli

    address, files = tls_cluster
    env = {
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": files["ca_file"],
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": files["cert"],
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": files["key"],
    }
    proc = run_cli(
        "compute",
        shared_data / "byte.tif",
        tmp_path / "o.tif",
        "--kernel",
        "reverse-bands",
        "--scheduler",
        address,
        "--no-progress",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    with rasterio.open(tmp_path / "o.tif") as o, rasterio.open(shared_data / "byte.tif") as s:
        np.testing.assert_array_equal(o.read(), s.read())


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare(1) for a mount namespace")
def test_worker_without_the_shared_folder_fails_fast(tmp_path, shared_data) -> None:
    """A worker in its own mount namespace sees an empty tmpfs where the output folder is."""
    out_dir = tmp_path / "shared"
    out_dir.mkdir()
    sched_file = tmp_path / "sched.json"
    log = open(tmp_path / "log", "wb")  # noqa: SIM115
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            subprocess.Popen(
                dask_command(
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(sched_file),
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        address = wait_for_scheduler_file(sched_file, procs[0])["address"]
        worker = " ".join(
            dask_command(
                "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    f"mount -t tmpfs none {out_dir} && exec {worker}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        with pipeline.connect(address, quiet=True) as client:
            client.wait_for_workers(1, timeout=60)
            with pytest.raises(ClusterError, match="not visible from worker"):
                check_folder_visible(client, str(out_dir))
            da = pipeline.open_raster(shared_data / "byte.tif")
            with pytest.raises(ClusterError, match="shared by this machine and every worker"):
                pipeline.write_raster(da, out_dir / "o.tif")
            check_folder_visible(client, str(tmp_path))  # a folder it does share passes
        assert os.listdir(out_dir) == []
    finally:
        stop_processes(procs)
        log.close()
