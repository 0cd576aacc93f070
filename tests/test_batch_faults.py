"""A batch whose workers are SIGKILLed while they write: nothing lost, nothing left behind."""

from __future__ import annotations

import collections
import json
import os
import signal
import threading
import time
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject

import pipeline
from pipeline.batch import BatchSummary, run_batch
from pipeline.io.staged import TEMP_SUFFIX
from pipeline.manifest import MANIFEST_NAME
from pipeline.testing import write_synthetic_raster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _temporaries(folder: str) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith(TEMP_SUFFIX)]


def test_workers_killed_while_writing_lose_nothing_and_leave_no_temporary(tmp_path) -> None:
    inp, out = tmp_path / "in", str(tmp_path / "out")
    inp.mkdir()
    n = 24
    for i in range(n):  # big enough that a write takes a while: the kill can land inside one
        write_synthetic_raster(
            inp / f"t{i:02d}.tif", bands=3, height=768, width=768, block=256, seed=i,
            origin=(300000.0 + i * 23040.0, 5000000.0),
        )  # fmt: skip
    box: dict[str, Any] = {}
    with pipeline.connect(
        processes=True,
        n_workers=2,
        threads_per_worker=1,
        dashboard_address="127.0.0.1:0",
        quiet=True,
    ) as client:
        pids = list(client.run(os.getpid).values())

        def run() -> None:
            try:
                box["summary"] = run_batch(
                    inp, out, "EPSG:3857", resampling="bilinear", client=client, group=1
                )
            except BaseException as err:  # reported below
                box["error"] = err

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while not (os.path.isdir(out) and _temporaries(out)):
            assert time.monotonic() < deadline and thread.is_alive(), "no write was seen"
            time.sleep(0.005)
        for pid in pids:  # whichever of them is writing that file dies with it
            os.kill(pid, signal.SIGKILL)
        thread.join(timeout=240)
        assert not thread.is_alive(), "the batch did not finish after its workers were killed"
    assert "error" not in box, box.get("error")
    summary: BatchSummary = box["summary"]
    assert summary.exit_code == 0, [r.error for r in summary.records if r.error]
    assert len(summary.records) == n
    assert sorted(r.input for r in summary.records) == sorted(str(p) for p in inp.iterdir())
    print(f"\nworkers killed mid-write: {summary.removed_temporaries} temporary file(s) removed")
    assert _temporaries(out) == []
    # each tile published once: no manifest record for a path twice
    with open(os.path.join(out, MANIFEST_NAME), encoding="utf-8") as fh:
        paths = collections.Counter(json.loads(line)["path"] for line in fh if line.strip())
    assert sorted(paths) == sorted(n for n in os.listdir(out) if n.endswith(".tif"))
    assert set(paths.values()) == {1}
    for record in summary.records:  # the pixels of rasterio's own warp of the tile
        with rasterio.open(record.input) as src, rasterio.open(record.output) as got:
            transform, width, height = calculate_default_transform(
                src.crs, "EPSG:3857", src.width, src.height, *src.bounds
            )
            assert (got.transform, got.width, got.height) == (transform, width, height)
            expected = np.zeros((src.count, height, width), src.dtypes[0])
            reproject(
                src.read(), expected, src_transform=src.transform, src_crs=src.crs,
                dst_transform=transform, dst_crs="EPSG:3857", resampling=Resampling.bilinear,
            )  # fmt: skip
            np.testing.assert_array_equal(got.read(), expected)
