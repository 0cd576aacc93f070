"""Clusters for real: scheduler/worker subprocesses on 127.0.0.1, loopback-only LocalCluster."""

from __future__ import annotations

import json
import os
import pathlib
import platform
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import psutil
import pytest
import rasterio

import pipeline
from pipeline.cluster import local_sizing
from tests.procs import dask_command, stop_processes, wait_for_scheduler_file
from tests.test_cli import run_cli

pytestmark = pytest.mark.cluster


@pytest.fixture
def scheduler_address(tmp_path) -> Iterator[str]:
    """A ``dask scheduler`` and a two-thread ``dask worker`` on 127.0.0.1, stopped afterwards."""
    sched_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "cluster.log", "wb")  # noqa: SIM115 (closed below)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    *dask_command(),
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(sched_file),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        address = wait_for_scheduler_file(sched_file, procs[0])["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(
            subprocess.Popen(
                [
                    *dask_command(),
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "2",
                    "--nworkers",
                    "1",
                    "--no-dashboard",
                    "--memory-limit",
                    "2GiB",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        stop_processes(procs)
        log.close()


def test_compute_on_a_running_scheduler_matches_the_local_run(
    scheduler_address, shared_data, tmp_path
) -> None:
    src = shared_data / "RGB.byte.tif"
    remote, local = tmp_path / "remote.tif", tmp_path / "local.tif"
    proc = run_cli(
        "compute",
        src,
        remote,
        "--kernel",
        "reverse-bands",
        "--chunks",
        "240",
        "--scheduler",
        scheduler_address,
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(
        "compute",
        src,
        local,
        "--kernel",
        "reverse-bands",
        "--chunks",
        "240",
        "--dashboard-address",
        "127.0.0.1:0",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    with rasterio.open(remote) as r, rasterio.open(local) as lo, rasterio.open(src) as s:
        np.testing.assert_array_equal(r.read(), lo.read())
        np.testing.assert_array_equal(r.read(), s.read()[::-1])
        assert (r.crs, r.transform, r.profile["blockxsize"]) == (
            lo.crs,
            lo.transform,
            lo.profile["blockxsize"],
        )


def test_python_api_on_a_running_scheduler_uses_a_distributed_lock(
    scheduler_address, shared_data, tmp_path
) -> None:
    import distributed

    from pipeline.io.locks import write_lock

    with pipeline.connect(scheduler_address, quiet=True) as client:
        assert isinstance(write_lock("k"), distributed.Lock)
        da = pipeline.apply_kernel(
            pipeline.open_raster(shared_data / "RGB.byte.tif", chunks={"y": 120}), "reverse-bands"
        )
        out = pipeline.write_raster(da, tmp_path / "o.tif")
        assert client.scheduler_info()["workers"]
    with rasterio.open(out) as o, rasterio.open(shared_data / "RGB.byte.tif") as s:
        np.testing.assert_array_equal(o.read(), s.read()[::-1])


def test_default_local_cluster_listens_only_on_loopback() -> None:
    me = psutil.Process()
    before = {c.laddr for c in me.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
    with pipeline.connect(dashboard_address="127.0.0.1:0", quiet=True) as client:
        assert client.dashboard_link.startswith("http://127.0.0.1:")
        listening = [
            c.laddr
            for c in me.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr not in before
        ]
    assert listening, "the cluster should listen somewhere"
    assert all(addr.ip == "127.0.0.1" for addr in listening), listening


def test_plain_tcp_to_a_remote_host_is_refused_without_insecure() -> None:
    # Refused before any connection is attempted (TEST-NET-1 documentation address).
    with pytest.raises(pipeline.ClusterError, match="tls://"):
        pipeline.connect("tcp://192.0.2.10:8786", quiet=True)
    with pytest.raises(pipeline.ClusterError, match="must start with"):
        pipeline.connect("http://127.0.0.1:8786", quiet=True)


def test_sizing_prefers_threads_and_respects_cpu_and_memory() -> None:
    s = local_sizing(cpu_count=8, memory=32 * 2**30)
    assert (s.n_workers, s.threads_per_worker, s.processes) == (1, 8, False)
    p = local_sizing(cpu_count=8, memory=6 * 2**30, processes=True)
    assert p.n_workers == 2 and p.threads_per_worker == 4  # 2 GiB per worker at least
    assert p.memory_limit >= 2 * 2**30
    o = local_sizing(cpu_count=4, memory=8 * 2**30, n_workers=2, threads_per_worker=1)
    assert (o.n_workers, o.threads_per_worker) == (2, 1)


def test_unreachable_scheduler_is_a_one_line_error(tmp_path, shared_data) -> None:
    import socket

    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_cli(
        "compute",
        shared_data / "byte.tif",
        tmp_path / "o.tif",
        "--kernel",
        "reverse-bands",
        "--scheduler",
        f"tcp://127.0.0.1:{port}",
        env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"},
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "cannot reach the scheduler" in proc.stderr
    assert not pathlib.Path(tmp_path / "o.tif").exists()


_FAULTS_PROBE = """
import json, resource, sys
import numpy as np
from pipeline.malloc import reuse_freed_memory, trim_freed_memory

def faults(n=40):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        a = np.ones(2**20, np.uint8)  # 1 MiB, every page touched
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults(2)  # a first large free: glibc's dynamic threshold now serves 1 MiB from the heap
applied = trim_freed_memory(sys.argv[1])
mapped = faults()
with reuse_freed_memory():
    reused = faults()
print(json.dumps([applied, mapped, reused, faults()]))
"""


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_thread_workers_get_the_malloc_trim_threshold_nanny_workers_get() -> None:
    def probe(value: str, **env: str) -> list:
        run_env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
        proc = subprocess.run(
            [sys.executable, "-c", _FAULTS_PROBE, value],
            capture_output=True,
            text=True,
            env={**run_env, **env},
            check=True,
        )
        return json.loads(proc.stdout)

    pages = 40 * 2**20 // 4096
    applied, mapped, reused, again = probe("65536")
    # Applied: every freed MiB goes back to the OS, so each new one faults in afresh ...
    assert applied and mapped > 0.8 * pages and again > 0.8 * pages
    # ... except inside reuse_freed_memory (client-side GDAL finishing), which reuses it.
    assert reused < 0.1 * pages
    applied, mapped, _, _ = probe("not-a-number")
    assert not applied and mapped < 0.1 * pages  # glibc's dynamic threshold, untouched
    applied, _, _, _ = probe("65536", MALLOC_TRIM_THRESHOLD_="0")
    assert not applied  # the user's own value stands


def _sigint_ignored() -> bool:
    import signal

    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


@pytest.mark.cluster
def test_worker_processes_ignore_ctrl_c_also_after_restart_but_the_client_does_not() -> None:
    import signal

    with pipeline.connect(
        processes=True,
        n_workers=1,
        threads_per_worker=1,
        dashboard_address="127.0.0.1:0",
        quiet=True,
    ) as client:
        assert all(client.run(_sigint_ignored).values())
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        client.restart()
        assert all(client.run(_sigint_ignored).values())
    with pipeline.connect(processes=False, dashboard_address="127.0.0.1:0", quiet=True) as client:
        assert not any(client.run(_sigint_ignored).values())  # thread workers: our process
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
