"""Network faults on a cluster across hosts (`tests.netns_cluster`): a link is cut mid-run.

Each run is ``pipeline compute`` from the client host over TLS. The timeouts of
`tests.netns_cluster.FAST_FAULTS` make each fault resolve in seconds: a connection silent for
11 s is dropped, a worker silent for 8 s is removed, a write-lock lease not refreshed for 4 s
(checked every second) is released. After every fault the output must equal the undisturbed
run's, and no temporary file may be left; the stall each fault caused (run time minus the
undisturbed run time) is printed and recorded as a test property.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from pipeline.io.staged import TEMP_SUFFIX
from pipeline.testing import write_synthetic_raster
from tests.test_netns_cli import assert_same_raster, one_error_line

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

#: Incompressible data written with LZMA: each of the 16 locked chunk writes takes a while.
_SHAPE = (3, 1024, 1024)
_ARGS = ("--kernel", "reverse-bands", "--chunks", "256", "--co", "COMPRESS=LZMA", "--no-progress")


def _poll(fn: Callable[[], Any], *, seconds: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"{what} not reached within {seconds} s")


def _leftovers(folder: Any) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith(TEMP_SUFFIX)]


def _seconds(stdout: str) -> float:
    """The compute time ``pipeline compute`` prints (``12.34 s, ... megapixels/s``)."""
    found = re.search(r"^([0-9.]+) s, ", stdout, re.MULTILINE)
    assert found, stdout
    return float(found.group(1))


@pytest.fixture(scope="module")
def job(net_cluster) -> dict[str, Any]:
    """Input raster, the undisturbed run's output and its compute time."""
    folder = net_cluster.folder / "faults"
    folder.mkdir()
    data = np.random.default_rng(17).integers(0, 255, size=_SHAPE, dtype="uint8")
    src = write_synthetic_raster(folder / "in.tif", data=data, block=256, compress=None)
    ref = folder / "undisturbed.tif"
    proc = net_cluster.pipeline(
        "compute", src, str(ref), *_ARGS, "--scheduler", net_cluster.address
    )
    assert proc.returncode == 0, proc.stderr
    return {"src": src, "ref": ref, "folder": folder, "seconds": _seconds(proc.stdout)}


@pytest.fixture(autouse=True)
def healed(net_cluster) -> Iterator[None]:
    """Every link up and both workers registered again after each test."""
    yield
    net_cluster.heal()


def _run_with_fault(
    net_cluster: Any, job: dict[str, Any], name: str, fault: Callable[[], str]
) -> tuple[subprocess.CompletedProcess[str], str, float]:
    """Start the job, call ``fault`` (which waits for its moment and cuts a link), and wait
    (bounded) for the job to end; the process, the fault's description and the wall time from
    the cut to the end of the run."""
    dst = job["folder"] / f"{name}.tif"
    popen = net_cluster.pipeline_popen(
        "compute", job["src"], str(dst), *_ARGS, "--scheduler", net_cluster.address
    )
    dropped: list[float] = []

    def watch(worker: str, since: float) -> None:  # when the scheduler drops the cut worker
        while time.monotonic() - since < 120 and popen.poll() is None:
            if worker not in net_cluster.scheduler_state().get("workers", {worker: 0}):
                dropped.append(time.monotonic() - since)
                return
            time.sleep(0.05)

    try:
        what = fault()
        cut = time.monotonic()
        worker = what.split("'")[0]
        if worker in net_cluster.workers:
            threading.Thread(target=watch, args=(worker, cut), daemon=True).start()
        out, err = popen.communicate(timeout=150)
        after_cut = time.monotonic() - cut
        time.sleep(0.1)
        if dropped:
            what += f"; the scheduler dropped {worker} {dropped[0]:.1f} s after the cut"
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait(timeout=10)
    return subprocess.CompletedProcess(popen.args, popen.returncode, out, err), what, after_cut


def _report(
    record_property: Any, name: str, job: dict[str, Any], seconds: float, what: str
) -> None:
    stall = seconds - job["seconds"]
    record_property("stall_seconds", round(stall, 2))
    print(
        f"\n{name}: {what}; run {seconds:.1f} s vs undisturbed {job['seconds']:.1f} s: "
        f"stall {stall:.1f} s"
    )


def _busy_worker(net_cluster: Any, *, writing: bool) -> str | None:
    """A worker executing a task (and, with ``writing``, inside the locked chunk write)."""
    leases = net_cluster.scheduler_state().get("leases", 0)
    for w in net_cluster.workers:
        state = net_cluster.worker_state(w)
        if state.get("executing") and (not writing or (state.get("writing") and leases)):
            return w
    return None


def _check_output(job: dict[str, Any], name: str) -> None:
    assert_same_raster(job["folder"] / f"{name}.tif", job["ref"])
    assert _leftovers(job["folder"]) == []


@pytest.mark.parametrize(
    ("writing", "name", "label", "moment"),
    [
        (False, "worker-cut", "worker link cut", "while it executed a task"),
        (True, "lock-cut", "lock holder link cut", "inside its locked chunk write"),
    ],
    ids=["while-it-runs-tasks", "while-it-holds-the-write-lock"],
)
def test_worker_link_cut(net_cluster, job, record_property, writing, name, label, moment) -> None:
    def cut() -> str:
        w = _poll(
            lambda: _busy_worker(net_cluster, writing=writing),
            what="a lock holder" if writing else "a busy worker",
        )
        net_cluster.hosts.set_link(w, False)
        return f"{w}'s link cut {moment}"

    proc, what, _ = _run_with_fault(net_cluster, job, name, cut)
    assert proc.returncode == 0, proc.stderr
    _report(record_property, label, job, _seconds(proc.stdout), what)
    _check_output(job, name)


def test_scheduler_link_cut_briefly_the_run_completes(net_cluster, job, record_property) -> None:
    """Cut for 3 s: shorter than the 11 s a silent connection is tolerated and the 8 s worker
    TTL, so no connection breaks and the run only pauses."""

    def cut() -> str:
        _poll(lambda: _busy_worker(net_cluster, writing=False), what="a busy worker")
        net_cluster.hosts.set_link("scheduler", False)
        time.sleep(3)
        net_cluster.hosts.set_link("scheduler", True)
        return "scheduler's link cut for 3 s"

    proc, what, _ = _run_with_fault(net_cluster, job, "scheduler-blip", cut)
    assert proc.returncode == 0, proc.stderr
    _report(record_property, "scheduler link cut briefly", job, _seconds(proc.stdout), what)
    _check_output(job, "scheduler-blip")


def test_scheduler_link_cut_for_long_stops_cleanly_and_a_rerun_completes(
    net_cluster, job, record_property
) -> None:
    """Cut until the client gives up (its connection is dropped after 11 s silent): one error
    line, nothing at the output path, no temporary file; with the link back a rerun completes."""

    def cut() -> str:
        _poll(lambda: _busy_worker(net_cluster, writing=False), what="a busy worker")
        net_cluster.hosts.set_link("scheduler", False)
        return "scheduler's link cut until the client gave up"

    proc, what, after_cut = _run_with_fault(net_cluster, job, "scheduler-lost", cut)
    print(f"\nscheduler link cut for long: {what}; the client stopped {after_cut:.1f} s after it")
    record_property("stopped_after_cut_seconds", round(after_cut, 1))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = one_error_line(proc.stderr)
    assert "lost the connection to the scheduler" in line and "nothing was published" in line
    net_cluster.heal()
    dst = job["folder"] / "scheduler-lost.tif"
    assert not dst.exists()
    assert _leftovers(job["folder"]) == []
    rerun = net_cluster.pipeline(
        "compute", job["src"], str(dst), *_ARGS, "--scheduler", net_cluster.address
    )
    assert rerun.returncode == 0, rerun.stderr
    _check_output(job, "scheduler-lost")
