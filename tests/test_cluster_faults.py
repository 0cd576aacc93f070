"""Fault tolerance with real worker processes: SIGKILL mid-run, SIGKILL of the write-lock
holder, and Ctrl-C. Each run's output must equal the input it was computed from."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np
import psutil
import pytest
import rasterio

import pipeline
from pipeline import config
from pipeline.io.write import TEMP_SUFFIX
from pipeline.testing import write_synthetic_raster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _cluster() -> Any:
    return pipeline.connect(
        processes=True,
        n_workers=2,
        threads_per_worker=1,
        dashboard_address="127.0.0.1:0",
        quiet=True,
    )


def _write_in_background(da: Any, dst: Any, **kw: Any) -> tuple[threading.Thread, dict]:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["out"] = pipeline.write_raster(da, dst, **kw)
        except BaseException as err:  # reported by the test
            box["error"] = err

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def _poll(fn: Any, seconds: float = 60, every: float = 0.02) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not reached in time")


def _leftovers(folder: Any) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith(TEMP_SUFFIX)]


def test_worker_killed_mid_run_still_gives_the_identical_output(tmp_path) -> None:
    src = write_synthetic_raster(tmp_path / "in.tif", bands=3, height=1024, width=1024, block=256)
    dst = tmp_path / "out.tif"
    with _cluster() as client:
        da = pipeline.apply_kernel(pipeline.open_raster(src, chunks=256), "reverse-bands")

        def busy_worker() -> str | None:
            # open -> kernel -> store are fused into one task per chunk: any task will do
            for addr, keys in client.processing().items():
                if keys:
                    return addr
            return None

        thread, box = _write_in_background(da, dst)
        victim = _poll(busy_worker)
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
        thread.join(timeout=180)
        assert not thread.is_alive(), "the run did not finish after a worker was killed"
        assert "error" not in box, box.get("error")
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with rasterio.open(dst) as out, rasterio.open(src) as ref:
        np.testing.assert_array_equal(out.read(), ref.read()[::-1])
    assert _leftovers(tmp_path) == []


def _holding_write_lock() -> tuple[bool, int]:
    """On a worker: is one of its threads inside the locked chunk write right now?"""
    for frame in sys._current_frames().values():
        f = frame
        while f is not None:
            code = f.f_code
            if code.co_name == "__setitem__" and code.co_filename.endswith("raster_writer.py"):
                return True, os.getpid()
            f = f.f_back
    return False, os.getpid()


def _held_leases(dask_scheduler: Any) -> int:
    return sum(len(v) for v in dask_scheduler.extensions["semaphores"].leases.values())


def test_worker_killed_while_holding_the_write_lock(tmp_path) -> None:
    rng = np.random.default_rng(7)  # incompressible data: LZMA makes each locked write slow
    data = rng.integers(0, 255, size=(3, 1536, 1536), dtype="uint8")
    src = write_synthetic_raster(tmp_path / "in.tif", data=data, block=512, compress=None)
    dst = tmp_path / "out.tif"
    with _cluster() as client:
        da = pipeline.open_raster(src, chunks=512)

        start = time.monotonic()
        pipeline.write_raster(da, tmp_path / "baseline.tif", compress="lzma")
        baseline = time.monotonic() - start

        def lock_holder() -> tuple[str, int] | None:
            for addr, (holding, pid) in client.run(_holding_write_lock).items():
                if holding and client.run_on_scheduler(_held_leases):
                    return addr, pid
            return None

        start = time.monotonic()
        thread, box = _write_in_background(da, dst, compress="lzma")
        _, pid = _poll(lock_holder, every=0.01)
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        thread.join(timeout=180)
        finished = time.monotonic()
        assert not thread.is_alive(), "deadlock: the run never finished after the lock holder died"
        assert "error" not in box, box.get("error")
    stall = (finished - start) - baseline
    print(
        f"\nlock-holder kill: baseline {baseline:.1f} s, run with kill {finished - start:.1f} s, "
        f"stall {stall:.1f} s (kill at +{killed_at - start:.1f} s; lease timeout "
        f"{config.get('cluster.lock-lease-timeout')} + validation "
        f"{config.get('cluster.lock-lease-validation-interval')})"
    )
    with rasterio.open(dst) as out:
        np.testing.assert_array_equal(out.read(), data)
    assert _leftovers(tmp_path) == []


def test_ctrl_c_closes_the_cluster_and_leaves_nothing_partial(tmp_path) -> None:
    src = write_synthetic_raster(tmp_path / "in.tif", bands=3, height=2048, width=2048, block=256)
    dst = tmp_path / "out.tif"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "compute",
            src,
            str(dst),
            "--kernel",
            "reverse-bands",
            "--processes",
            "--workers",
            "2",
            "--threads",
            "1",
            "--dashboard-address",
            "127.0.0.1:0",
            "--no-progress",
            "--chunks",
            "256",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    me = psutil.Process(proc.pid)
    # wait until both worker processes run and a temporary output exists (work under way)
    _poll(lambda: len(me.children(recursive=True)) >= 2 and _leftovers(tmp_path), seconds=90)
    time.sleep(1.0)
    children = me.children(recursive=True)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode != 0
    assert "Traceback" not in err
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"leaked processes: {alive}"
    assert not dst.exists()
    assert _leftovers(tmp_path) == []
