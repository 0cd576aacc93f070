"""The per-process block cache of remote reads: windows equal GDAL's, each block read once."""

from __future__ import annotations

import pathlib
import threading
import uuid
from collections import Counter

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from pipeline.io import blockcache
from pipeline.io.blockcache import _rectangles, read_blocks


@pytest.fixture(scope="module")
def cog(shared_data: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("bc") / "rgb.tif"  # 791 x 718, 256-pixel blocks
    rasterio.shutil.copy(str(shared_data / "RGB.byte.tif"), str(path), driver="COG",
                         BLOCKSIZE=256)  # fmt: skip
    return path


class CountingReader:
    """``ds.read`` that records the blocks each call covers."""

    def __init__(self, ds: rasterio.DatasetReader) -> None:
        self.ds = ds
        self.blocks: Counter[tuple[int, int]] = Counter()
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, indexes, *, window: Window, out_dtype: str) -> np.ndarray:
        by, bx = self.ds.block_shapes[0]
        with self.lock:
            self.calls += 1
            for i in range(window.row_off // by, (window.row_off + window.height - 1) // by + 1):
                for j in range(window.col_off // bx, (window.col_off + window.width - 1) // bx + 1):
                    self.blocks[(i, j)] += 1
            return self.ds.read(indexes, window=window, out_dtype=out_dtype)


def test_rectangles_group_runs_of_columns_over_rows() -> None:
    assert _rectangles([(0, 0), (0, 1), (1, 0), (1, 1), (2, 1)]) == [
        ((0, 2), (0, 2)),
        ((2, 3), (1, 2)),
    ]
    assert _rectangles([(0, 0), (0, 2)]) == [((0, 1), (0, 1)), ((0, 1), (2, 3))]
    assert _rectangles([]) == []


@pytest.mark.parametrize(
    ("rows", "cols"), [((0, 718), (0, 791)), ((100, 300), (250, 600)), ((700, 718), (0, 1))]
)
def test_a_window_equals_the_gdal_read(cog: pathlib.Path, rows, cols) -> None:
    with rasterio.open(cog) as ds:
        key = (uuid.uuid4().hex, None)
        got = read_blocks(ds, key, [1, 2, 3], "uint8", rows, cols)
        want = ds.read(window=Window(cols[0], rows[0], cols[1] - cols[0], rows[1] - rows[0]))
    np.testing.assert_array_equal(got, want)


def test_overlapping_windows_read_each_block_once(cog: pathlib.Path) -> None:
    with rasterio.open(cog) as ds:
        reader = CountingReader(ds)
        key = (uuid.uuid4().hex, None)
        for rows, cols in (((0, 300), (0, 300)), ((200, 600), (200, 600)), ((0, 718), (0, 791))):
            read_blocks(ds, key, [1, 2, 3], "uint8", rows, cols, read=reader)
    assert set(reader.blocks) == {(i, j) for i in range(3) for j in range(4)}
    assert max(reader.blocks.values()) == 1, reader.blocks


def test_threads_reading_shared_blocks_fetch_them_once(cog: pathlib.Path) -> None:
    key = (uuid.uuid4().hex, None)
    counters: list[CountingReader] = []
    results: list[np.ndarray] = []
    barrier = threading.Barrier(4)

    def work(rows: tuple[int, int], cols: tuple[int, int]) -> None:
        with rasterio.open(cog) as ds:  # a handle per thread, as in pipeline.io.files
            reader = CountingReader(ds)
            counters.append(reader)
            barrier.wait(timeout=10)
            results.append(read_blocks(ds, key, [1, 2, 3], "uint8", rows, cols, read=reader))

    windows = [((0, 400), (0, 400)), ((0, 400), (300, 791)), ((300, 718), (0, 400)),
               ((300, 718), (300, 791))]  # fmt: skip
    threads = [threading.Thread(target=work, args=w) for w in windows]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    total = sum((c.blocks for c in counters), Counter())
    assert len(results) == 4 and max(total.values()) == 1, total


def test_the_cache_is_bounded(cog: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blockcache, "CACHE_BYTES", 3 * 256 * 256 * 3)
    blockcache.clear()
    with rasterio.open(cog) as ds:
        read_blocks(ds, (uuid.uuid4().hex, None), [1, 2, 3], "uint8", (0, 718), (0, 791))
    assert blockcache._cached_bytes <= 3 * 256 * 256 * 3
    blockcache.clear()
