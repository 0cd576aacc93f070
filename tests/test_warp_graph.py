"""The dask graph of a chunked warp (`pipeline.warp.graph`): one task per destination chunk.

Each task depends only on the source chunks it touches, reads only its own window of an
opened file, or is a fill task; default destination chunks are whole blocks of the warp.
"""

from __future__ import annotations

import dask
import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from dask.core import get_dependencies

import pipeline
from pipeline.errors import ChunkingError
from pipeline.warp import graph as warp_graph
from pipeline.warp import grid as warpgrid
from pipeline.warp import tile
from pipeline.warp.reproject import reproject, warp_spec
from tests.conftest import UTM_30M, differing, synthetic_da, whole_warp


@pytest.fixture(autouse=True)
def _threads():
    with dask.config.set(scheduler="threads"):
        yield


def _open_keys(out: xr.DataArray, source: xr.DataArray) -> dict:
    """Dependencies of every output key, by key."""
    graph = dict(out.data.dask)
    return {
        key: get_dependencies(graph, key)
        for key in graph
        if isinstance(key, tuple) and key[0] == out.data.name
    }


def test_each_chunk_depends_only_on_the_source_chunks_it_touches(shared_data) -> None:
    da = pipeline.open_raster(shared_data / "RGB.byte.tif")  # 48-row, full-width strips
    with dask.config.set({"pipeline.reproject.direct-reads": False}):
        out = reproject(da, "EPSG:3857", resampling="cubic", chunks=64)
    layer = out.data.dask.layers[out.data.name]
    assert out.data.dask.dependencies[out.data.name] == {da.data.name}
    deps = _open_keys(out, da)
    assert len(deps) == out.data.npartitions
    spec = warp_spec(da, "EPSG:3857", resampling="cubic")
    windows = warpgrid.source_windows(spec.src, spec.dst, out.data.chunks[1:], halo=spec.halo)
    row_edges = np.cumsum((0, *da.data.chunks[1]))
    for (_, _, i, j), keys in deps.items():
        assert all(k[0] == da.data.name for k in keys)
        win = windows[i][j]
        expected = set()
        if win is not None:
            for n in range(len(row_edges) - 1):
                if row_edges[n] < win.row1 and row_edges[n + 1] > win.row0:
                    expected.add((da.data.name, 0, n, 0))
        assert keys == expected
        assert len(keys) <= 3  # a 64-pixel chunk spans about 64 + 2 x 5 rows: <= 3 strips
    assert len(layer) == out.data.npartitions


def _reads_per_task(out: xr.DataArray, monkeypatch) -> dict:
    """Compute ``out`` task by task; the source windows each task read from the file."""
    reads: dict = {}
    current: list = []
    original = tile.read_source_window

    def counting(source, rows, cols):
        current.append((rows, cols))
        return original(source, rows, cols)

    monkeypatch.setattr(tile, "read_source_window", counting)
    graph = dict(out.data.dask)
    for key, task in graph.items():
        if isinstance(key, tuple) and key[0] == out.data.name:
            current.clear()
            task[0](*task[1:])
            reads[key] = list(current)
    return reads


def test_tasks_of_an_opened_file_read_only_their_window_and_depend_on_nothing(
    shared_data, monkeypatch
) -> None:
    da = pipeline.open_raster(shared_data / "RGB.byte.tif")
    out = reproject(da, "EPSG:3857", resampling="cubic", chunks=64)
    assert out.data.dask.dependencies[out.data.name] == set()
    assert list(out.data.dask.layers) == [out.data.name]  # the open layer is not needed
    spec = warp_spec(da, "EPSG:3857", resampling="cubic")
    windows = warpgrid.source_windows(spec.src, spec.dst, out.data.chunks[1:], halo=spec.halo)
    reads = _reads_per_task(out, monkeypatch)
    assert len(reads) == out.data.npartitions
    for (_, _, i, j), windows_read in reads.items():
        win = windows[i][j]
        expected = [] if win is None else [((win.row0, win.row1), (win.col0, win.col1))]
        assert windows_read == expected
    with dask.config.set({"pipeline.reproject.direct-reads": False}):
        through_chunks = reproject(da, "EPSG:3857", resampling="cubic", chunks=64)
    assert through_chunks.data.name != out.data.name
    np.testing.assert_array_equal(out.values, through_chunks.values)
    assert differing(out.values, whole_warp(da, "EPSG:3857", resampling="cubic")) == 0


def test_chunks_outside_the_source_are_fill_tasks(shared_data) -> None:
    da = pipeline.open_raster(shared_data / "RGB.byte.tif")
    left, bottom, right, top = (-9_300_000.0, 2_500_000.0, -8_000_000.0, 3_200_000.0)
    out = reproject(
        da, "EPSG:3857", bounds=(left, bottom, right, top), resolution=2000.0, chunks=64
    )
    graph = dict(out.data.dask)
    tasks = {k: v for k, v in graph.items() if isinstance(k, tuple) and k[0] == out.data.name}
    fill = [k for k, task in tasks.items() if task[0] is warp_graph._fill]
    warped = [k for k, task in tasks.items() if task[0] is not warp_graph._fill]
    assert fill and warped
    values = out.values
    for _, _, i, j in fill:
        block = values[:, i * 64 : (i + 1) * 64, j * 64 : (j + 1) * 64]
        assert (block == 0).all()
    assert (
        differing(
            values,
            whole_warp(da, "EPSG:3857", bounds=(left, bottom, right, top), resolution=2000.0),
        )
        == 0
    )


def test_default_chunks_are_large_multiples_of_512() -> None:
    data = dsa.zeros((3, 3000, 3000), dtype="uint8", chunks=1000)
    da = synthetic_da(data, UTM_30M, chunks=1000)
    out = reproject(da, "EPSG:32618")
    assert out.data.chunks[1][0] == 1024 and out.data.chunks[2][0] == 1024
    wide = synthetic_da(
        dsa.zeros((8, 3000, 3000), dtype="float64", chunks=1000), UTM_30M, chunks=1000
    )
    edge = reproject(wide, "EPSG:32618").data.chunks[1][0]
    assert edge % 512 == 0 and edge * edge * 8 * 8 <= 64 * 2**20
    # shrinking 10x: a 1024 chunk would need a 10240-pixel source window (300 MiB)
    big = synthetic_da(
        dsa.zeros((3, 30000, 30000), dtype="uint8", chunks=5000), UTM_30M, chunks=None
    )
    coarse = reproject(big, "EPSG:32618", resolution=300.0)
    assert coarse.data.chunks[1][0] == 512 and coarse.sizes["y"] == 3000


@pytest.mark.parametrize(
    ("shape", "count", "dtype", "block", "y_chunk", "x_chunks"),
    [
        # narrow (<= 1024 columns): blocks are whole rows, so a chunk is the whole width
        ((3000, 1000), 1, "uint8", (128, 1000), 1024, (1000,)),
        ((1500, 1024), 3, "uint8", (128, 1024), 1024, (1024,)),
        # 16 float64 bands: the edge shrinks to 512, still at least one whole block wide
        ((3000, 1000), 16, "float64", (128, 1000), 512, (1000,)),
        # wide (> 1024 columns): 512-column blocks
        ((2000, 3000), 1, "uint8", (128, 512), 1024, (1024, 1024, 952)),
        ((1300, 1500), 16, "float64", (128, 512), 512, (512, 512, 476)),
    ],
)
def test_default_destination_chunks_are_whole_blocks(
    shape, count, dtype, block, y_chunk, x_chunks
) -> None:
    height, width = shape
    data = dsa.zeros((count, height, width), dtype=dtype, chunks=(count, 500, 500))
    da = synthetic_da(data, UTM_30M, chunks=None)
    spec = warp_spec(da, "EPSG:32618")
    assert spec.dst.shape == shape  # same CRS and resolution: the source grid
    assert spec.block == block
    _, ys, xs = reproject(da, "EPSG:32618").data.chunks
    assert xs == x_chunks and sum(ys) == height
    assert set(ys[:-1]) == {y_chunk} and 0 < ys[-1] <= y_chunk
    block_rows, block_cols = spec.block
    for chunks, size, step in ((ys, height, block_rows), (xs, width, block_cols)):
        edges = np.cumsum(chunks)
        assert edges[-1] == size
        assert all(edge % step == 0 for edge in edges[:-1])  # every boundary on the block grid


@pytest.mark.parametrize(
    ("shape", "count", "dtype", "y_chunk", "x_chunks"),
    [
        ((3000, 2061), 3, "uint8", 384, (2061,)),  # one strip column, <= 1024 x 1024 pixels
        ((3000, 1000), 1, "uint8", 1024, (1000,)),  # narrow: as the local default
        ((3000, 20000), 1, "uint8", 128, (7168, 7168, 5664)),  # wider than 8192: split evenly
        ((3000, 3000), 16, "float64", 128, (3000,)),  # 512 x 512 pixels of 128 bytes each
        ((3000, 9000), 16, "float64", 128, (3072, 3072, 2856)),  # a block row <= 64 MiB
    ],
)
def test_default_chunks_of_a_remote_source_are_full_width_strips_of_whole_blocks(
    shape, count, dtype, y_chunk, x_chunks
) -> None:
    height, width = shape
    data = dsa.zeros((count, height, width), dtype=dtype, chunks=(count, 500, 500))
    spec = warp_spec(synthetic_da(data, UTM_30M, chunks=None), "EPSG:32618")
    ys, xs = warp_graph.destination_chunks(None, spec, remote=True)
    assert xs == x_chunks and sum(ys) == height
    assert set(ys[:-1]) == {y_chunk} and 0 < ys[-1] <= y_chunk
    block_rows, block_cols = spec.block
    assert y_chunk % block_rows == 0 and all(x % block_cols == 0 for x in xs[:-1])
    local_y, local_x = warp_graph.destination_chunks(None, spec)
    # no more pixels than the local default's chunks, or one block row of at most 64 MiB
    pixels = y_chunk * max(xs)
    assert pixels <= local_y[0] * local_x[0] or (
        y_chunk == block_rows and pixels * count * np.dtype(dtype).itemsize <= 64 * 2**20
    )


def _spec(height: int = 100, width: int = 80):
    data = dsa.zeros((1, height, width), dtype="uint8", chunks=50)
    return warp_spec(synthetic_da(data, UTM_30M, chunks=None), "EPSG:32618")


def test_explicit_destination_chunks_are_honoured_as_given() -> None:
    spec = _spec()
    assert spec.dst.shape == (100, 80)
    chunks = warp_graph.destination_chunks
    assert chunks(30, spec) == ((30, 30, 30, 10), (30, 30, 20))
    assert chunks((40, 25), spec) == ((40, 40, 20), (25, 25, 25, 5))
    assert chunks({"y": 64}, spec) == ((64, 36), (80,))
    assert chunks({"x": 50}, spec) == ((100,), (50, 30))
    assert chunks(((1, 99), (79, 1)), spec) == ((1, 99), (79, 1))
    assert chunks(((1, 99), [79, 1]), spec) == ((1, 99), (79, 1))
    assert chunks(1000, spec) == ((100,), (80,))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (0, "positive"),
        (-5, "positive"),
        ((10, 0), "positive"),
        ({"y": 0}, "positive"),
        ({"band": 1}, "unknown destination chunk dimension"),
        ({"y": 10, "time": 2}, "unknown destination chunk dimension"),
        (True, "chunks must be"),
        ("auto", "chunks must be"),
        ((1, 2, 3), "chunks must be"),
        (((1, 2), (3, 4)), "sum to the destination shape"),
        (((100,), (80, 0)), "positive and sum"),
        (((50, 51), (80,)), "sum to the destination shape"),
    ],
)
def test_bad_destination_chunks_raise_chunking_errors(bad, message) -> None:
    with pytest.raises(ChunkingError, match=message) as info:
        warp_graph.destination_chunks(bad, _spec())
    assert "\n" not in str(info.value) and isinstance(info.value, ValueError)
