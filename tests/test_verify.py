"""verify_raster: catches what GDAL reads back silently (never-written tiles, truncation)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from pipeline.testing import write_synthetic_raster
from pipeline.verify import verify_raster, verify_written


def test_a_good_file_passes_with_its_crs(shared_data) -> None:
    res = verify_raster(shared_data / "RGB.byte.tif", crs="EPSG:32618")
    assert res.ok, res.problems
    assert res.shape == (3, 718, 791) and res.blocks > 0 and res.warnings == []


def test_wrong_or_missing_crs_is_a_problem(shared_data) -> None:
    assert (
        "not the expected" in verify_raster(shared_data / "RGB.byte.tif", crs="EPSG:3857").summary()
    )
    assert "no CRS" in verify_raster(shared_data / "float.tif", crs="EPSG:4326").summary()


def test_corrupt_tiles_fail(shared_data) -> None:
    res = verify_raster(shared_data / "corrupt.tif")
    assert not res.ok and "unreadable" in res.summary()


def _write_sparse(path) -> None:
    """A 512 x 512 sparse GeoTIFF of 256-pixel tiles in which only the first tile is written."""
    profile = {
        "driver": "GTiff",
        "width": 512,
        "height": 512,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:32618",
        "transform": from_origin(0, 512, 1, 1),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "SPARSE_OK": True,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, 256, 256), 7, "uint8"), window=Window(0, 0, 256, 256))


def test_never_written_tiles_are_detected_although_gdal_reads_zeros(tmp_path) -> None:
    path = tmp_path / "sparse.tif"
    _write_sparse(path)
    with rasterio.open(path) as ds:  # GDAL reads the missing tiles back as zeros, no error
        assert ds.read().sum() == 7 * 256 * 256
    res = verify_raster(path)
    assert not res.ok and "3 block(s) never written" in res.summary()


def test_truncated_file_fails(tmp_path) -> None:
    path = write_synthetic_raster(tmp_path / "t.tif", height=512, width=512, block=256)
    data = pathlib.Path(path).read_bytes()
    with open(path, "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    assert not verify_raster(path).ok


@pytest.mark.parametrize("content", [b"", b"not a raster"])
def test_non_rasters_fail(tmp_path, content) -> None:
    path = tmp_path / "x.tif"
    path.write_bytes(content)
    res = verify_raster(path)
    assert not res.ok and "x.tif" in res.path


def test_all_nodata_is_a_warning_not_a_failure(shared_data) -> None:
    res = verify_raster(shared_data / "all-nodata.tif")
    assert res.ok and res.warnings == ["all pixels are nodata"]


def test_truncated_file_fails_without_decoding(tmp_path) -> None:
    path = write_synthetic_raster(tmp_path / "t.tif", height=512, width=512, block=256)
    data = pathlib.Path(path).read_bytes()
    with open(path, "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    res = verify_raster(path, decode=False)
    assert not res.ok and "past the end of the file" in res.summary()


def test_verify_written_checks_the_block_table_and_warns_from_the_array(tmp_path) -> None:
    data = np.zeros((1, 512, 512), "uint8")
    path = write_synthetic_raster(tmp_path / "z.tif", data=data, nodata=0, block=256)
    res = verify_written(path, data, crs="EPSG:32618", nodata=0)
    assert res.ok and res.warnings == ["all pixels are nodata"]
    assert verify_written(path, data + 1, crs="EPSG:32618", nodata=0).warnings == []
    assert "not the expected" in verify_written(path, data, crs="EPSG:3857", nodata=0).summary()
    sparse = tmp_path / "sparse.tif"
    _write_sparse(sparse)
    res = verify_written(sparse, data, crs=None, nodata=None)
    assert not res.ok and "3 block(s) never written" in res.summary()


def test_verify_written_checks_the_crs_each_time_despite_the_cache(tmp_path) -> None:
    path = write_synthetic_raster(tmp_path / "a.tif", height=32, width=32)
    data = np.ones((1, 32, 32), "uint8")
    for _ in range(2):  # the second call hits the CRS cache: same answers
        assert verify_written(path, data, crs="EPSG:32618", nodata=None).ok
        bad = verify_written(path, data, crs="EPSG:3857", nodata=None)
        assert not bad.ok
        assert "not the expected" in bad.problems[0]
