"""The seed's scale (``bench_batch.py --scale``): 40,000 tiles in one ``pipeline batch`` run.

On a ``dask scheduler`` and one ``dask worker`` (with its nanny, ``--nworkers 2 --nthreads 1``)
on 127.0.0.1, every run a whole ``pipeline batch --scheduler ...`` process as a user runs it:

1. reference: the first 1,024 tiles; its tiles/s is the rate the big run must stay within 15%
   of;
2. the big run: all tiles, with one worker process SIGKILLed when half of the outputs are
   published (the nanny restarts it). Printed: tiles/s, the stall around the kill, peak RSS of
   the client and of the scheduler (targets < 1 GB each), report rows, temporaries left,
   tiles published twice (a second manifest record for a path: work redone beyond the tasks in
   flight);
3. an independent check: ``pipeline verify OUTDIR`` decodes every output;
4. the rerun: the same command; every tile is found done from its manifest record, nothing
   decoded (target < 60 s).
"""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import psutil

MANIFEST = ".pipeline-manifest.jsonl"
TEMP_SUFFIX = ".pipeline-tmp"
PER_ROW = 200


def _write_tiles(args: tuple[str, int, int, int, int]) -> None:
    from pipeline.testing import synthetic_array, write_synthetic_raster

    folder, first, last, size, seeds = args
    arrays = [synthetic_array(3, size, size, seed=s) for s in range(seeds)]
    for i in range(first, last):
        write_synthetic_raster(
            os.path.join(folder, f"tile_{i:05d}.tif"),
            data=arrays[i % seeds],
            block=size,
            origin=(  # every tile at its own place: no two share a source grid
                300000.0 + (i % PER_ROW) * size * 30.0,
                5000000.0 - (i // PER_ROW) * size * 30.0,
            ),
        )


def make_tiles(folder: str, n: int, size: int, workers: int = 2) -> None:
    """``n`` deflate tiles of ``size`` x ``size`` x 3 uint8 in UTM 18N (cached by count)."""
    if os.path.isdir(folder) and len(os.listdir(folder)) >= n:
        return
    os.makedirs(folder, exist_ok=True)
    step = -(-n // (workers * 8))
    parts = [(folder, i, min(n, i + step), size, 17) for i in range(0, n, step)]
    with concurrent.futures.ProcessPoolExecutor(workers) as ex:
        list(ex.map(_write_tiles, parts))


@dataclass
class Run:
    """One whole ``pipeline`` process: exit code, wall seconds, peak RSS and its output."""

    code: int
    seconds: float
    peak_rss_mb: float
    out: str
    err: str


def _pipeline() -> str:
    return str(pathlib.Path(sys.executable).with_name("pipeline"))


def run_pipeline(args: list[str], log: pathlib.Path, on_tick: Any = None) -> Run:
    """Run ``pipeline ARGS``; its own peak RSS comes from ``wait4``, not from sampling."""
    out, err = log.with_suffix(".out"), log.with_suffix(".err")
    with open(out, "wb") as fo, open(err, "wb") as fe:
        start = time.perf_counter()
        proc = subprocess.Popen([_pipeline(), *args], stdout=fo, stderr=fe)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if on_tick is not None:
                on_tick()
            time.sleep(0.05)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(proc.returncode, seconds, usage.ru_maxrss / 1024, out.read_text(), err.read_text())


class Cluster:
    """A scheduler and a nanny-managed worker on 127.0.0.1; the scheduler's RSS is sampled."""

    def __init__(self, folder: pathlib.Path, workers: int) -> None:
        dask = str(pathlib.Path(sys.executable).with_name("dask"))
        sched_file = folder / "scheduler.json"
        sched_file.unlink(missing_ok=True)
        self.log = open(folder / "cluster.log", "wb")  # noqa: SIM115 (closed by close)
        self.scheduler = subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
             "127.0.0.1:0", "--scheduler-file", str(sched_file)],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not sched_file.exists():
            if time.monotonic() > deadline or self.scheduler.poll() is not None:
                raise SystemExit("the scheduler did not start; see cluster.log")
            time.sleep(0.2)
        time.sleep(0.3)
        self.address = json.loads(sched_file.read_text())["address"]
        self.worker = subprocess.Popen(
            [dask, "worker", self.address, "--host", "127.0.0.1", "--nworkers", str(workers),
             "--nthreads", "1", "--no-dashboard", "--memory-limit", "4GiB"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.scheduler_peak_mb = 0.0
        deadline = time.monotonic() + 60
        while len(self.worker_pids()) < workers:
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not start; see cluster.log")
            time.sleep(0.2)

    def worker_pids(self) -> list[int]:
        """PIDs of the worker processes (the nannies' spawned children)."""
        kids = psutil.Process(self.worker.pid).children(recursive=True)
        return [
            p.pid
            for p in kids
            if "multiprocessing" in " ".join(p.cmdline())
            and "resource_tracker" not in " ".join(p.cmdline())
        ]

    def sample(self) -> None:
        """Record the scheduler's RSS now (its peak is kept)."""
        rss = psutil.Process(self.scheduler.pid).memory_info().rss / 2**20
        self.scheduler_peak_mb = max(self.scheduler_peak_mb, rss)

    def close(self) -> None:
        for p in (self.worker, self.scheduler):
            p.terminate()
        for p in (self.worker, self.scheduler):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        self.log.close()


def _published(outdir: str) -> int:
    """Outputs recorded in the manifest so far (lines written by the client)."""
    try:
        with open(os.path.join(outdir, MANIFEST), "rb") as fh:
            return sum(1 for _ in fh)
    except FileNotFoundError:
        return 0


def run_scale(work: str, n: int = 40000, size: int = 256, reference: int = 1024,
              workers: int = 2) -> None:  # fmt: skip
    """The four steps of the module docstring, with their figures printed."""
    folder = pathlib.Path(work)
    tiles = str(folder / f"scale-{size}-{n}")
    t0 = time.perf_counter()
    make_tiles(tiles, n, size, workers)
    print(f"{n} tiles of {size}x{size}x3 uint8 ready in {time.perf_counter() - t0:.0f} s")
    ref_in = folder / f"scale-{size}-{reference}"
    if not ref_in.is_dir():  # the first tiles, hard-linked
        ref_in.mkdir()
        for name in sorted(os.listdir(tiles))[:reference]:
            os.link(os.path.join(tiles, name), ref_in / name)
    common = ["--dst-crs", "EPSG:3857", "--resampling", "bilinear"]
    cluster = Cluster(folder, workers)
    try:
        sched = ["--scheduler", cluster.address]
        print(f"cluster: scheduler {cluster.address}, {workers} worker processes x 1 thread")
        ref_out = folder / "scale-out-ref"
        shutil.rmtree(ref_out, ignore_errors=True)
        ref = run_pipeline(["batch", str(ref_in), "-o", str(ref_out), *common, *sched,
                            "--no-progress"], folder / "ref")  # fmt: skip
        ref_rate = reference / ref.seconds
        print(
            f"1. {reference} tiles: {ref.seconds:.1f} s, {ref_rate:.1f} tiles/s (exit {ref.code})"
        )

        out = str(folder / "scale-out")
        shutil.rmtree(out, ignore_errors=True)
        report = str(folder / "scale-report.csv")
        state: dict[str, Any] = {"killed": None, "ticks": []}

        def tick() -> None:
            now = time.perf_counter()
            if state["ticks"] and now - state["ticks"][-1][0] < 0.5:
                return
            cluster.sample()
            done = _published(out)
            state["ticks"].append((now, done))
            if state["killed"] is None and done >= n // 2:
                victim = cluster.worker_pids()[0]
                os.kill(victim, signal.SIGKILL)
                state["killed"] = (now, done, victim)

        big = run_pipeline(["batch", tiles, "-o", out, *common, *sched, "--report", report],
                           folder / "scale", on_tick=tick)  # fmt: skip
        rate = n / big.seconds
        print(
            f"2. {n} tiles: {big.seconds:.1f} s, {rate:.1f} tiles/s (exit {big.code}); "
            f"{rate / ref_rate:.2f}x the {reference}-tile rate (within 15%: "
            f"{'PASS' if rate >= 0.85 * ref_rate else 'FAIL'})"
        )
        print("   " + _summary_line(big.out))
        killed_at, killed_done, victim = state["killed"] or (0.0, 0, 0)
        print(
            f"   worker {victim} SIGKILLed at {killed_done} published; throughput lost to it: "
            f"{_lost_seconds(state['ticks'], killed_at):.1f} s of the pre-kill rate"
        )
        print(
            f"   peak RSS: client {big.peak_rss_mb:.0f} MB, scheduler "
            f"{cluster.scheduler_peak_mb:.0f} MB (sampled every 0.5 s) (< 1024 each: "
            f"{'PASS' if max(big.peak_rss_mb, cluster.scheduler_peak_mb) < 1024 else 'FAIL'})"
        )
        with open(report, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        statuses = collections.Counter(r["status"] for r in rows)
        temps = [
            name for _, _, names in os.walk(out) for name in names if name.endswith(TEMP_SUFFIX)
        ]
        with open(os.path.join(out, MANIFEST), encoding="utf-8") as fh:
            paths = collections.Counter(json.loads(line)["path"] for line in fh if line.strip())
        twice = sum(1 for c in paths.values() if c > 1)
        print(
            f"   report rows {len(rows)} ({dict(statuses)}), distinct inputs "
            f"{len({r['input'] for r in rows})}; temporaries left {len(temps)}; "
            f"outputs published {len(paths)}, published twice {twice}"
        )
        ver = run_pipeline(["verify", out], folder / "verify")
        print(
            f"3. pipeline verify OUTDIR (every block decoded): {ver.seconds:.1f} s, exit "
            f"{ver.code}: {_summary_line(ver.out + ver.err)}"
        )
        again = run_pipeline(["batch", tiles, "-o", out, *common, *sched, "--no-progress"],
                             folder / "rerun")  # fmt: skip
        print(
            f"4. rerun: {again.seconds:.1f} s (< 60: {'PASS' if again.seconds < 60 else 'FAIL'}), "
            f"exit {again.code}: {_summary_line(again.out)}"
        )
    finally:
        cluster.close()


def _lost_seconds(ticks: list[tuple[float, int]], at: float, span: float = 20.0) -> float:
    """Throughput the kill cost: tiles missing in the ``span`` seconds after ``at``, against
    the rate of the ``span`` seconds before it, in seconds of that rate."""
    before = [(t, d) for t, d in ticks if at - span <= t <= at]
    after = [(t, d) for t, d in ticks if at <= t <= at + span]
    if len(before) < 2 or len(after) < 2:
        return float("nan")
    rate = (before[-1][1] - before[0][1]) / (before[-1][0] - before[0][0])
    got = after[-1][1] - after[0][1]
    return (rate * (after[-1][0] - after[0][0]) - got) / rate if rate else float("nan")


def _summary_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if " tiles: " in ln or " file(s): " in ln]
    return lines[-1] if lines else text.strip()[-300:]


if __name__ == "__main__":
    run_scale(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="bench-scale-"))
