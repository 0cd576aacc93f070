"""Batch mode: failure isolation, reports, resume, crash safety, equality with `reproject`."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling

import pipeline
from pipeline.batch import (
    TileOptions,
    _reproject_tile,
    _warp_tile_direct,
    plan_batch,
    run_batch,
)
from pipeline.batch_plan import TileJob
from pipeline.io.write import TEMP_SUFFIX
from pipeline.verify import verify_raster
from pipeline.warp.spec import WarpOptions
from tests.conftest import good_tiles
from tests.test_cli import run_cli

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    with pipeline.connect(threads_per_worker=2, dashboard_address="127.0.0.1:0", quiet=True) as c:
        yield c


def _bad_tiles(folder: pathlib.Path, shared_data: pathlib.Path) -> dict[str, str]:
    """Plant the four kinds of bad input; map each file name to the reason we expect."""
    shutil.copyfile(shared_data / "corrupt.tif", folder / "corrupt.tif")  # scratch copy
    (folder / "empty.tif").write_bytes(b"")
    (folder / "notes.tif").write_text("not a raster\n")
    shutil.copyfile(shared_data / "float.tif", folder / "nocrs.tif")
    return {
        "corrupt.tif": "corrupt or unreadable",
        "empty.tif": "empty file",
        "notes.tif": "not a readable raster",
        "nocrs.tif": "no CRS",
    }


def _outputs(folder: pathlib.Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*.tif")}


def test_bad_tiles_fail_alone_and_are_reported(client, tmp_path, shared_data) -> None:
    good = good_tiles(tmp_path / "in")
    expected = _bad_tiles(tmp_path / "in", shared_data)
    report = tmp_path / "report.jsonl"
    summary = run_batch(
        tmp_path / "in",
        tmp_path / "out",
        "EPSG:3857",
        report=report,
        resampling="bilinear",
        client=client,
    )
    assert summary.exit_code == 1
    assert (summary.done, summary.failed, summary.skipped) == (len(good), len(expected), 0)
    assert _outputs(tmp_path / "out") == {f"{p.stem}_3857.tif" for p in good}
    for p in good:
        assert verify_raster(tmp_path / "out" / f"{p.stem}_3857.tif", crs="EPSG:3857").ok
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    failed = {pathlib.Path(r["input"]).name: r["error"] for r in rows if r["status"] == "failed"}
    assert set(failed) == set(expected)
    for name, reason in expected.items():
        assert reason in failed[name], failed[name]
    assert [n for n in os.listdir(tmp_path / "out") if n.endswith(TEMP_SUFFIX)] == []


def test_rerun_skips_done_tiles_and_redoes_a_never_written_output(client, tmp_path) -> None:
    good = good_tiles(tmp_path / "in")
    out = tmp_path / "out"
    first = run_batch(tmp_path / "in", out, "EPSG:3857", client=client)
    assert first.done == len(good)
    # plant a file whose tiles were never written (GDAL reads it back as zeros)
    victim = out / f"{good[0].stem}_3857.tif"
    with rasterio.open(victim) as ds:
        profile = ds.profile
    victim.unlink()
    with rasterio.open(victim, "w", **{**profile, "SPARSE_OK": True}):
        pass
    assert not verify_raster(victim).ok
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.tif") if p != victim}
    second = run_batch(tmp_path / "in", out, "EPSG:3857", client=client)
    assert (second.skipped, second.done, second.failed) == (len(good) - 1, 1, 0)
    assert verify_raster(victim, crs="EPSG:3857").ok
    assert all(p.stat().st_mtime_ns == m for p, m in mtimes.items())  # untouched
    third = run_batch(tmp_path / "in", out, "EPSG:3857", client=client, overwrite=True)
    assert third.done == len(good)


def test_batch_output_equals_pipeline_reproject(client, tmp_path, shared_data) -> None:
    src = tmp_path / "in" / "rgb.tif"
    src.parent.mkdir()
    shutil.copyfile(shared_data / "RGB.byte.tif", src)  # scratch copy in a folder of its own
    run_batch(src.parent, tmp_path / "out", "EPSG:3857", resampling="bilinear", client=client)
    expected = pipeline.reproject(pipeline.open_raster(src), "EPSG:3857", resampling="bilinear")
    with rasterio.open(tmp_path / "out" / "rgb_3857.tif") as ds:
        np.testing.assert_array_equal(ds.read(), expected.values)
        assert ds.transform.almost_equals(expected.rio.transform())
        assert ds.crs == expected.rio.crs
        assert ds.nodata == expected.rio.nodata


def test_both_tile_paths_read_the_overview_reproject_reads(tmp_path, shared_data) -> None:
    src = tmp_path / "rgb.tif"
    shutil.copyfile(shared_data / "RGB.byte.tif", src)
    with rasterio.open(src, "r+") as ds:
        ds.build_overviews([2, 4, 8], Resampling.average)
    res = 8 * 300.0379266750948
    opts = TileOptions("EPSG:32618", WarpOptions(resampling="average", resolution=(res, res)))
    _warp_tile_direct(TileJob(str(src), str(tmp_path / "direct.tif")), opts, overwrite=False)
    _reproject_tile(TileJob(str(src), str(tmp_path / "dask.tif")), opts, overwrite=False)
    da = pipeline.open_raster(src)
    kwargs = {"resolution": res, "resampling": "average"}
    expected = pipeline.reproject(da, "EPSG:32618", **kwargs)
    full = pipeline.reproject(da, "EPSG:32618", overviews=False, **kwargs).values
    for name in ("direct.tif", "dask.tif"):
        with rasterio.open(tmp_path / name) as ds:
            np.testing.assert_array_equal(ds.read(), expected.values)
            assert ds.transform.almost_equals(expected.rio.transform())
    assert not np.array_equal(expected.values, full)


def test_sub_folders_are_mirrored_and_lists_and_globs_work(client, tmp_path) -> None:
    good_tiles(tmp_path / "in" / "a", n=2)
    good_tiles(tmp_path / "in" / "b", n=1)
    s = run_batch(tmp_path / "in", tmp_path / "out", "EPSG:4326", recursive=True, client=client)
    assert s.done == 3
    assert _outputs(tmp_path / "out") == {
        "a/tile0_4326.tif",
        "a/tile1_4326.tif",
        "b/tile0_4326.tif",
    }
    listing = tmp_path / "list.txt"
    listing.write_text("# tiles\nin/a/tile0.tif\n\nin/b/tile0.tif\n")
    plan = plan_batch(listing, tmp_path / "out2", "EPSG:4326")
    assert [
        pathlib.Path(j.output).relative_to(tmp_path / "out2").as_posix() for j in plan.jobs
    ] == ["a/tile0_4326.tif", "b/tile0_4326.tif"]
    plan = plan_batch(str(tmp_path / "in" / "a" / "*.tif"), tmp_path / "out3", "EPSG:4326")
    assert len(plan.jobs) == 2


def test_cli_exit_codes(tmp_path, shared_data) -> None:
    (tmp_path / "empty").mkdir()
    proc = run_cli("batch", tmp_path / "empty", "-o", tmp_path / "out", "--dst-crs", "EPSG:3857")
    assert proc.returncode == 2 and "no input rasters" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("batch", tmp_path / "empty", "-o", tmp_path / "out", "--dst-crs", "nonsense")
    assert proc.returncode == 2 and "invalid CRS 'nonsense'" in proc.stderr
    good = good_tiles(tmp_path / "in", n=2)
    args = [
        "batch",
        tmp_path / "in",
        "-o",
        tmp_path / "out",
        "--dst-crs",
        "EPSG:3857",
        "--dashboard-address",
        "127.0.0.1:0",
        "--no-progress",
    ]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "2 done, 0 skipped, 0 failed" in proc.stdout
    (tmp_path / "in" / "bad.tif").write_text("x")
    proc = run_cli(*args, "--report", tmp_path / "r.csv")
    assert proc.returncode == 1
    assert f"{len(good)} skipped, 1 failed" in proc.stdout and "bad.tif" in proc.stdout
    assert (tmp_path / "r.csv").read_text().count("\n") == 4  # header + 3 rows


@pytest.mark.slow
def test_sigkill_mid_batch_leaves_nothing_partial_and_a_rerun_completes(tmp_path) -> None:
    tiles = good_tiles(tmp_path / "in", n=40, size=256)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "batch",
        str(tmp_path / "in"),
        "-o",
        str(out),
        "--dst-crs",
        "EPSG:3857",
        "--resampling",
        "cubic",
        "--dashboard-address",
        "127.0.0.1:0",
        "--no-progress",
        "--threads",
        "2",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while len(list(out.glob("*_3857.tif"))) < 3:
        assert time.monotonic() < deadline and proc.poll() is None, "batch did not get going"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    finished = list(out.glob("*_3857.tif"))
    assert 0 < len(finished) < len(tiles), "the kill should land mid-run"
    for path in finished:  # whatever is at a final path is complete
        assert verify_raster(path, crs="EPSG:3857").ok, path
    rerun = run_cli(*cmd[3:])
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} skipped" in rerun.stdout
    assert len(list(out.glob("*_3857.tif"))) == len(tiles)
    assert [n for n in os.listdir(out) if n.endswith(TEMP_SUFFIX)] == []


def test_a_failing_tile_in_a_group_fails_alone_with_a_row_per_tile(
    client, tmp_path, shared_data
) -> None:
    good = good_tiles(tmp_path / "in", n=5, size=64)
    shutil.copyfile(shared_data / "corrupt.tif", tmp_path / "in" / "tile2b.tif")
    report = tmp_path / "report.csv"
    summary = run_batch(
        tmp_path / "in", tmp_path / "out", "EPSG:3857", report=report, client=client, group=3
    )
    assert (summary.done, summary.failed) == (5, 1)
    assert _outputs(tmp_path / "out") == {f"{p.stem}_3857.tif" for p in good}
    rows = report.read_text().splitlines()[1:]
    assert len(rows) == 6
    failed = [r for r in summary.records if r.status == "failed"]
    assert [pathlib.Path(r.input).name for r in failed] == ["tile2b.tif"]
    assert "corrupt or unreadable" in failed[0].error


def test_process_group_equals_process_tile_per_tile(tmp_path, shared_data) -> None:
    from pipeline.batch import process_group, process_tile

    good = good_tiles(tmp_path / "in", n=2, size=64)
    shutil.copyfile(shared_data / "corrupt.tif", tmp_path / "in" / "bad.tif")
    inputs = [good[0], tmp_path / "in" / "bad.tif", good[1]]
    opts = plan_batch(inputs[0], tmp_path / "x", "EPSG:3857").options
    grouped = [TileJob(str(p), str(tmp_path / "a" / f"{p.stem}.tif")) for p in inputs]
    single = [TileJob(str(p), str(tmp_path / "b" / f"{p.stem}.tif")) for p in inputs]
    records = process_group(grouped, opts)
    alone = [process_tile(job, opts) for job in single]
    assert [r.status for r in records] == [r.status for r in alone] == ["done", "failed", "done"]
    assert [r.input for r in records] == [str(p) for p in inputs]
    assert records[1].error == alone[1].error
    for p in good:
        name = f"{p.stem}.tif"
        with rasterio.open(tmp_path / "a" / name) as a, rasterio.open(tmp_path / "b" / name) as b:
            assert np.array_equal(a.read(), b.read())


def test_a_lost_group_task_reports_each_of_its_tiles(monkeypatch) -> None:
    from pipeline.batch import TileRecord, _run_window

    class Lost:
        def __init__(self, jobs) -> None:
            self.jobs = jobs

        def result(self):
            raise RuntimeError("worker died")

        def release(self) -> None:
            pass

    class FakeClient:
        def submit(self, fn, jobs, opts, key, pure):
            assert key.startswith("pipeline-tiles-")
            return Lost(jobs)

    import distributed

    jobs = [TileJob(f"in{i}.tif", f"out{i}.tif") for i in range(5)]
    got: list[TileRecord] = []
    monkeypatch.setattr(distributed, "as_completed", _ListQueue)
    _run_window(FakeClient(), jobs, TileOptions("EPSG:3857"), 4, got.append, group=2)
    assert [r.input for r in got] == [j.input for j in jobs]
    assert all(r.status == "failed" and "worker died" in r.error for r in got)


class _ListQueue:
    """`distributed.as_completed` stand-in: futures in submission order."""

    def __init__(self, futures) -> None:
        self.futures = list(futures)

    def __iter__(self):
        while self.futures:
            yield self.futures.pop(0)

    def add(self, fut) -> None:
        self.futures.append(fut)


def test_local_cluster_kind_follows_the_tile_count_unless_configured() -> None:
    import dask

    from pipeline.batch import use_processes

    assert not use_processes(511, cpus=2) and use_processes(512, cpus=2)
    assert not use_processes(40000, cpus=1)  # one core: processes only cost start-up
    with dask.config.set({"pipeline.batch.processes-min-tiles": 2}):
        assert use_processes(2, cpus=2)
    for forced in (True, False):
        with dask.config.set({"pipeline.batch.processes": forced}):
            assert use_processes(1, cpus=2) is forced and use_processes(10**6, cpus=2) is forced


def test_cli_batch_starts_worker_processes_for_many_tiles_threads_for_few(tmp_path) -> None:
    good_tiles(tmp_path / "in", n=2)
    args = ["batch", tmp_path / "in", "--dst-crs", "EPSG:3857", "--no-progress",
            "--dashboard-address", "127.0.0.1:0"]  # fmt: skip
    proc = run_cli(*args, "-o", tmp_path / "a")
    assert proc.returncode == 0, proc.stderr
    assert "(threads in this process)" in proc.stderr and "2 done" in proc.stdout
    proc = run_cli(
        *args, "-o", tmp_path / "b", env={"DASK_PIPELINE__BATCH__PROCESSES_MIN_TILES": "2"}
    )
    assert proc.returncode == 0, proc.stderr
    assert "thread(s) (processes)" in proc.stderr and "2 done" in proc.stdout
