"""write_raster: round trip, tiling, locks, atomicity and no-clobber."""

from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio
import xarray as xr

import pipeline
from pipeline.io.write import TEMP_SUFFIX
from pipeline.kernels import KernelSpec
from pipeline.testing import write_synthetic_raster


def _leftovers(folder) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith(TEMP_SUFFIX)]


def test_round_trip_keeps_georeferencing_nodata_dtype_descriptions_and_tags(shared_data, tmp_path):
    src = shared_data / "all-nodata.tif"
    out = pipeline.write_raster(pipeline.open_raster(src), tmp_path / "out.tif")
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert b.crs == a.crs
        assert b.transform == a.transform
        assert b.nodata == a.nodata
        assert b.dtypes == a.dtypes
        assert b.descriptions == a.descriptions
        assert b.tags()["TIFFTAG_DATETIME"] == a.tags()["TIFFTAG_DATETIME"]
        np.testing.assert_array_equal(b.read(), a.read())


def test_bands_without_descriptions_do_not_get_dask_names_as_descriptions(
    shared_data, tmp_path
) -> None:
    src = shared_data / "RGB.byte.tif"  # no band descriptions
    da = pipeline.open_raster(src)
    assert da.name is None
    outputs = {
        "open": da,
        "kernel": pipeline.apply_kernel(da, "reverse-bands"),
        "reproject": pipeline.reproject(da, "EPSG:3857"),
        "both": pipeline.reproject(pipeline.apply_kernel(da, "reverse-bands"), "EPSG:3857"),
    }
    for label, out in outputs.items():
        path = pipeline.write_raster(out, tmp_path / f"{label}.tif")
        with rasterio.open(src) as a, rasterio.open(path) as b:
            assert b.descriptions == a.descriptions == (None, None, None), label
    named = pipeline.reproject(da.rename("rgb"), "EPSG:3857")
    assert named.name == "rgb"  # a name the user gave is kept


def test_output_is_tiled_compressed_and_tiles_divide_the_chunks(tmp_path) -> None:
    src = write_synthetic_raster(tmp_path / "in.tif", height=2048, width=1536, block=256)
    da = pipeline.open_raster(src, chunks=768)
    out = pipeline.write_raster(da, tmp_path / "out.tif")
    with rasterio.open(out) as ds:
        by, bx = ds.block_shapes[0]
        assert ds.profile["tiled"] and ds.compression.name.lower() == "deflate"
        assert ds.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "2"
        np.testing.assert_array_equal(ds.read(), rasterio.open(src).read())
    assert 768 % by == 0 and 768 % bx == 0 and by % 16 == 0


def test_unaligned_chunks_are_rechunked_for_writing(tmp_path, shared_data) -> None:
    da = pipeline.open_raster(shared_data / "RGB.byte.tif").chunk({"y": 100, "x": 100})
    out = pipeline.write_raster(da, tmp_path / "out.tif")
    with rasterio.open(out) as a, rasterio.open(shared_data / "RGB.byte.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_float_output_uses_the_floating_point_predictor(tmp_path, shared_data) -> None:
    out = pipeline.write_raster(
        pipeline.open_raster(shared_data / "float_nan.tif"), tmp_path / "f.tif"
    )
    with rasterio.open(out) as ds, rasterio.open(shared_data / "float_nan.tif") as ref:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "3"
        np.testing.assert_array_equal(ds.read(), ref.read())  # NaN positions equal too
        assert np.isnan(ds.nodata)


def _failing_spec() -> KernelSpec:
    def func(block: np.ndarray) -> np.ndarray:
        if block[0, 0, 0] == 255:  # the marker planted in one chunk only
            raise RuntimeError("kernel failed on one chunk")
        return block

    return KernelSpec(name="fail-once", func=func, description="test kernel")


def _input_with_one_bad_chunk(tmp_path) -> str:
    data = np.zeros((1, 256, 256), dtype="uint8")
    data[0, 128, 128] = 255  # first pixel of the last chunk when chunked by 128
    return write_synthetic_raster(tmp_path / "in.tif", data=data, block=128)


def test_a_failing_chunk_leaves_no_output_and_no_temporary_file(tmp_path) -> None:
    src = _input_with_one_bad_chunk(tmp_path)
    out = pipeline.apply_kernel(pipeline.open_raster(src, chunks=128), _failing_spec())
    dst = tmp_path / "out.tif"
    with pytest.raises(RuntimeError, match="failed on one chunk"):
        pipeline.write_raster(out, dst)
    assert not dst.exists()
    assert _leftovers(tmp_path) == []


def test_a_failing_chunk_leaves_an_existing_output_untouched(tmp_path) -> None:
    src = _input_with_one_bad_chunk(tmp_path)
    dst = tmp_path / "out.tif"
    dst.write_bytes(b"previous result")
    out = pipeline.apply_kernel(pipeline.open_raster(src, chunks=128), _failing_spec())
    with pytest.raises(RuntimeError):
        pipeline.write_raster(out, dst, overwrite=True)
    assert dst.read_bytes() == b"previous result"
    assert _leftovers(tmp_path) == []


def test_existing_output_is_not_clobbered_without_overwrite(tmp_path, shared_data) -> None:
    dst = tmp_path / "out.tif"
    dst.write_bytes(b"keep me")
    da = pipeline.open_raster(shared_data / "byte.tif")
    with pytest.raises(pipeline.OutputExistsError, match="overwrite"):
        pipeline.write_raster(da, dst)
    assert dst.read_bytes() == b"keep me"
    pipeline.write_raster(da, dst, overwrite=True)
    with rasterio.open(dst) as ds:
        assert ds.read().shape == (1, 20, 20)
    assert _leftovers(tmp_path) == []


def test_missing_output_folder_is_an_output_error(tmp_path, shared_data) -> None:
    with pytest.raises(pipeline.OutputError, match="does not exist"):
        pipeline.write_raster(
            pipeline.open_raster(shared_data / "byte.tif"), tmp_path / "no" / "o.tif"
        )


def test_in_memory_arrays_are_written_too(tmp_path, shared_data) -> None:
    da = pipeline.open_raster(shared_data / "byte.tif").compute()
    assert isinstance(da, xr.DataArray) and not hasattr(da.data, "dask")
    out = pipeline.write_raster(da, tmp_path / "o.tif")
    with rasterio.open(out) as ds, rasterio.open(shared_data / "byte.tif") as ref:
        np.testing.assert_array_equal(ds.read(), ref.read())
        assert ds.crs == ref.crs


def test_write_lock_follows_the_scheduler() -> None:
    import threading

    import distributed

    from pipeline.io.locks import write_lock

    local = write_lock("k")
    assert isinstance(local, type(threading.Lock())) and write_lock("k") is local
    with distributed.Client(processes=False, n_workers=1, dashboard_address=":0"):
        assert isinstance(write_lock("k"), distributed.Lock)


def test_write_tasks_are_named_for_the_dashboard(tmp_path, shared_data) -> None:
    import distributed
    from dask.utils import key_split

    da = pipeline.apply_kernel(
        pipeline.open_raster(shared_data / "RGB.byte.tif", chunks={"y": 240}), "reverse-bands"
    )
    with (
        distributed.Client(processes=False, n_workers=1, dashboard_address=":0") as client,
        distributed.get_task_stream(client) as stream,
    ):
        pipeline.write_raster(da, tmp_path / "o.tif")
    prefixes = {key_split(t["key"]) for t in stream.data}
    assert "pipeline-write" in prefixes, prefixes
    assert not any(p.startswith("store") for p in prefixes), prefixes


def test_the_lock_holder_alone_compresses_with_several_gdal_threads() -> None:
    import pickle
    import threading

    from rasterio.env import get_gdal_config

    from pipeline.io.locks import CompressingLock

    lock = CompressingLock(threading.Lock(), threads=3)
    seen: dict[str, object] = {}
    held, done = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            seen["holder"] = get_gdal_config("GDAL_NUM_THREADS")
            held.set()
            done.wait(10)
        seen["after"] = get_gdal_config("GDAL_NUM_THREADS")

    def other() -> None:
        held.wait(10)
        seen["other"] = get_gdal_config("GDAL_NUM_THREADS")
        seen["other_waits"] = not lock.lock.acquire(timeout=0.05)
        done.set()

    before = get_gdal_config("GDAL_NUM_THREADS")
    threads = [threading.Thread(target=holder), threading.Thread(target=other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == {"holder": 3, "other": before, "other_waits": True, "after": before}
    assert not lock.locked()
    # the locks of two outputs held at once by one thread restore in turn
    with lock:
        with CompressingLock(threading.Lock(), threads=2):
            assert get_gdal_config("GDAL_NUM_THREADS") == 2
        assert get_gdal_config("GDAL_NUM_THREADS") == 3
    assert get_gdal_config("GDAL_NUM_THREADS") == before
    # a cluster's lock is shipped to the workers with the wrapper
    copy = pickle.loads(pickle.dumps(CompressingLock(lock=None, threads=2)))
    assert copy == CompressingLock(lock=None, threads=2)


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_compression_threads_under_the_lock_change_no_pixel(tmp_path, dtype) -> None:
    import dask

    src = write_synthetic_raster(tmp_path / "in.tif", height=1024, width=1536, block=256)
    da = pipeline.open_raster(src, chunks={"y": 512, "x": 512}).astype(dtype)
    outs = []
    for threads in (1, 2):  # 2 whatever the contention: GDAL's threaded compression runs
        with dask.config.set({"pipeline.write.compress-threads": threads, "scheduler": "threads"}):
            outs.append(pipeline.write_raster(da, tmp_path / f"out{threads}.tif"))
    with rasterio.open(outs[0]) as one, rasterio.open(outs[1]) as many:
        assert one.profile["compress"] == many.profile["compress"] == "deflate"
        np.testing.assert_array_equal(one.read(), many.read())
        np.testing.assert_array_equal(one.read(), da.values)


def test_the_lock_holder_takes_all_cores_only_once_threads_wait_for_the_lock() -> None:
    import threading
    import time

    from dask.system import CPU_COUNT
    from rasterio.env import get_gdal_config

    from pipeline.io.locks import CompressingLock

    before = get_gdal_config("GDAL_NUM_THREADS")
    quiet = CompressingLock(threading.Lock())
    for _ in range(3):  # nobody waits: one thread, the other threads are computing
        with quiet:
            assert get_gdal_config("GDAL_NUM_THREADS") == 1
    busy = CompressingLock(threading.Lock())
    seen: list[object] = []

    def work() -> None:
        for _ in range(3):
            with busy:
                seen.append(get_gdal_config("GDAL_NUM_THREADS"))
                time.sleep(0.1)  # each holder keeps the other waiting

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen[0] == 1 and seen[-1] == max(1, int(CPU_COUNT)), seen
    assert get_gdal_config("GDAL_NUM_THREADS") == before
