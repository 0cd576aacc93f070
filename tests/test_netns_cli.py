"""The CLI against a scheduler on another host: scheduler, workers and client each in a network
namespace of their own (`tests.netns_cluster`), TLS with temporary certificates, a shared folder.

Every output must equal, pixel for pixel and in its georeferencing, the output of a local run.
"""

from __future__ import annotations

import contextlib
import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
import rasterio

from tests.conftest import good_tiles
from tests.netns_cluster import OBSERVER, read_json
from tests.procs import dask_command, stop_processes
from tests.test_cli import invoke

pytestmark = pytest.mark.cluster


def assert_same_raster(a: pathlib.Path | str, b: pathlib.Path | str) -> None:
    """Same pixels (bit for bit), dtype, shape, CRS, transform, nodata and tiling."""
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert (x.count, x.height, x.width, x.dtypes) == (y.count, y.height, y.width, y.dtypes)
        assert (x.crs, x.transform, x.nodata) == (y.crs, y.transform, y.nodata)
        assert x.block_shapes == y.block_shapes
        xa, ya = x.read(), y.read()
    assert xa.tobytes() == ya.tobytes()


def one_error_line(stderr: str) -> str:
    """The single ``pipeline: error:`` line of a failed run (and no traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("pipeline: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_hosts_are_namespaces_apart_from_the_root_one(net_cluster) -> None:
    hosts = net_cluster.hosts
    root = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert "198.51.100." not in root
    addr = hosts.run("client", ["ip", "-o", "-4", "addr"], timeout=10, capture_output=True,
                     text=True).stdout  # fmt: skip
    assert f"{hosts.addresses['client']}/24" in addr and "127.0.0.1/8" in addr
    routes = hosts.run("client", ["ip", "route"], timeout=10, capture_output=True, text=True)
    assert "default" not in routes.stdout  # the bridge reaches the other hosts and nothing else


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("compute", ["--kernel", "reverse-bands", "--no-progress"]),
        ("reproject", ["--dst-crs", "EPSG:3857", "--resampling", "bilinear", "--chunks", "256",
                       "--no-progress"]),
    ],
)  # fmt: skip
def test_command_over_tls_equals_the_local_run(
    net_cluster, shared_data, tmp_path, command, args
) -> None:
    folder = net_cluster.folder / command
    folder.mkdir()
    src = shared_data / "RGB.byte.tif"
    local = invoke(command, src, tmp_path / "local.tif", *args)
    assert local.exit_code == 0, local.stderr
    remote = net_cluster.pipeline(
        command, str(src), str(folder / "o.tif"), *args, "--scheduler", net_cluster.address
    )
    assert remote.returncode == 0, remote.stderr
    assert_same_raster(folder / "o.tif", tmp_path / "local.tif")


def test_batch_over_tls_equals_the_local_run(net_cluster, tmp_path) -> None:
    folder = net_cluster.folder / "batch"
    tiles = good_tiles(folder / "in", n=6, size=96)
    args = ["--dst-crs", "EPSG:4326", "--no-progress"]
    local = invoke("batch", folder / "in", "-o", tmp_path / "local", *args, "--workers", "1",
                   "--dashboard-address", "127.0.0.1:0")  # fmt: skip
    assert local.exit_code == 0, local.stderr
    remote = net_cluster.pipeline(
        "batch", str(folder / "in"), "-o", str(folder / "out"), *args,
        "--scheduler", net_cluster.address,
    )  # fmt: skip
    assert remote.returncode == 0, remote.stderr
    assert "6 done" in remote.stdout, remote.stdout
    for tile in tiles:
        name = f"{tile.stem}_4326.tif"
        assert_same_raster(folder / "out" / name, tmp_path / "local" / name)


def test_a_folder_the_workers_do_not_see_stops_the_run_before_any_work(
    net_cluster, shared_data
) -> None:
    """The client host mounts its own empty tmpfs on the output folder: the probe fails."""
    private = net_cluster.folder / "private"
    private.mkdir()
    script = (
        f"mount -t tmpfs none {private} && exec {sys.executable} -m pipeline compute "
        f"{shared_data / 'byte.tif'} {private / 'o.tif'} --kernel reverse-bands "
        f"--scheduler {net_cluster.address} --no-progress"
    )
    proc = net_cluster.hosts.run(
        "client", ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        timeout=120, env=net_cluster.client_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    line = one_error_line(proc.stderr)
    assert "not visible from worker(s)" in line
    assert "198.51.100.11" in line and "198.51.100.12" in line
    assert list(private.iterdir()) == []  # the tmpfs was the client's only


@contextlib.contextmanager
def plain_cluster(net_cluster, *, worker_env: dict[str, str] | None = None) -> Iterator[str]:
    """A plain-tcp scheduler on the scheduler host (port 8788) and one worker on w1."""
    hosts = net_cluster.hosts
    address = f"tcp://{hosts.addresses['scheduler']}:8788"
    env = {k: v for k, v in net_cluster.client_env().items() if "TLS" not in k}
    env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] = "False"
    env["PIPELINE_NETNS_STATE"] = str(net_cluster.folder / "plain-state")
    (net_cluster.folder / "plain-state").mkdir(exist_ok=True)
    (net_cluster.folder / "plain-state" / "scheduler.json").unlink(missing_ok=True)
    log = open(net_cluster.logs / "plain.log", "ab")  # noqa: SIM115
    procs = []
    try:
        procs.append(hosts.popen("scheduler", dask_command(
            "scheduler", "--host", hosts.addresses["scheduler"], "--port", "8788",
            "--no-dashboard", "--preload", OBSERVER), env=env, stdout=log,
            stderr=subprocess.STDOUT))  # fmt: skip
        procs.append(hosts.popen("w1", dask_command(
            "worker", address, "--host", hosts.addresses["w1"], "--nthreads", "1",
            "--no-dashboard", "--memory-limit", "1GiB"), env={**env, **(worker_env or {})},
            stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
        state = net_cluster.folder / "plain-state" / "scheduler.json"
        deadline = time.monotonic() + 60
        while not read_json(state).get("workers"):  # a run with no worker checks nothing
            assert time.monotonic() < deadline, "the plain-tcp worker did not join"
            time.sleep(0.1)
        yield address
    finally:
        stop_processes(procs, seconds=10)
        log.close()


def test_plain_tcp_to_another_host_needs_insecure(net_cluster, shared_data) -> None:
    folder = net_cluster.folder / "plain"
    folder.mkdir()
    args = ["compute", str(shared_data / "byte.tif"), str(folder / "o.tif"), "--kernel",
            "reverse-bands", "--no-progress"]  # fmt: skip
    with plain_cluster(net_cluster) as address:
        refused = net_cluster.pipeline(*args, "--scheduler", address, timeout=60)
        assert refused.returncode == 1
        line = one_error_line(refused.stderr)
        assert "refusing plain-text tcp://" in line and "--insecure" in line
        assert not (folder / "o.tif").exists()
        done = net_cluster.pipeline(
            *args,
            "--scheduler",
            address,
            "--insecure",
            timeout=120,
            DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION="False",
        )
        assert done.returncode == 0, done.stderr
    with rasterio.open(folder / "o.tif") as o, rasterio.open(shared_data / "byte.tif") as s:
        np.testing.assert_array_equal(o.read(), s.read())


def test_a_worker_with_other_package_versions_stops_the_run(
    net_cluster, shared_data, tmp_path
) -> None:
    """A worker host whose rioxarray reports another version (a stub dist-info first on its
    path): the client's version check names the worker and the package."""
    fake = net_cluster.folder / "fake-site"
    info = fake / "rioxarray-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rioxarray\nVersion: 0.0.1\n")
    pythonpath = f"{fake}:{net_cluster.client_env()['PYTHONPATH']}"
    folder = net_cluster.folder / "versions"
    folder.mkdir()
    with plain_cluster(net_cluster, worker_env={"PYTHONPATH": pythonpath}) as address:
        proc = net_cluster.pipeline(
            "compute", str(shared_data / "byte.tif"), str(folder / "o.tif"), "--kernel",
            "reverse-bands", "--no-progress", "--scheduler", address, "--insecure",
            timeout=120, DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION="False",
        )  # fmt: skip
    assert proc.returncode == 1
    line = one_error_line(proc.stderr)
    assert "package versions differ" in line and "rioxarray" in line and "0.0.1" in line
    assert "198.51.100.11" in line
    assert list(folder.iterdir()) == []
