"""open_raster: block-aligned lazy chunks, metadata, tokens, errors."""

from __future__ import annotations

import os

import dask
import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling

import pipeline
import pipeline.io.open as open_module
from pipeline import chunking
from pipeline.io.files import FileSource, overview_shapes, read_source_window
from pipeline.io.open import file_source
from pipeline.testing import write_synthetic_raster
from tests.conftest import raise_if_dask_computes


def test_open_is_lazy_and_reads_the_same_values_as_rasterio(shared_data) -> None:
    path = shared_data / "RGB.byte.tif"
    with raise_if_dask_computes():
        da = pipeline.open_raster(path)
    assert da.dims == ("band", "y", "x")
    with rasterio.open(path) as ds:
        expected = ds.read()
        assert da.rio.crs == ds.crs
        assert da.rio.transform() == ds.transform
        assert da.rio.nodata == ds.nodata
    np.testing.assert_array_equal(da.values, expected)


@pytest.mark.parametrize("name", ["RGB.byte.tif", "shade.tif", "all-nodata.tif", "world.rgb.tif"])
def test_auto_chunks_fall_on_the_files_block_grid(shared_data, name) -> None:
    path = shared_data / name
    da = pipeline.open_raster(path)
    with rasterio.open(path) as ds:
        by, bx = ds.block_shapes[0]
        count = ds.count
    assert da.data.chunks[0] == (count,)  # band axis in one chunk
    assert chunking.is_block_aligned(da.data.chunks[1], by)
    assert chunking.is_block_aligned(da.data.chunks[2], bx)


def test_striped_file_gets_full_width_row_bands(tmp_path) -> None:
    path = write_synthetic_raster(tmp_path / "striped.tif", height=1500, width=900, block=None)
    with rasterio.open(path) as ds:
        assert ds.block_shapes[0][1] == 900  # really striped
        rows = ds.block_shapes[0][0]
    with dask.config.set({"pipeline.open.chunk-bytes": "256KiB"}):
        da = pipeline.open_raster(path)
    assert da.data.chunks[2] == (900,)
    assert len(da.data.chunks[1]) > 1
    assert chunking.is_block_aligned(da.data.chunks[1], rows)


def test_tiled_file_gets_many_whole_tile_chunks(tmp_path) -> None:
    path = write_synthetic_raster(tmp_path / "tiled.tif", height=2000, width=1300, block=256)
    da = pipeline.open_raster(path)
    ys, xs = da.data.chunks[1:]
    assert len(ys) * len(xs) >= 4
    assert chunking.is_block_aligned(ys, 256) and chunking.is_block_aligned(xs, 256)
    np.testing.assert_array_equal(da.values, rasterio.open(path).read())


def test_explicit_chunks_are_rounded_to_blocks_with_a_warning(tmp_path) -> None:
    path = write_synthetic_raster(tmp_path / "t.tif", height=1024, width=1024, block=256)
    with pytest.warns(pipeline.PipelineWarning, match="not multiples"):
        da = pipeline.open_raster(path, chunks=300)
    assert da.data.chunks[1] == (256, 256, 256, 256)
    da = pipeline.open_raster(path, chunks={"y": 512, "x": 1024})
    assert da.data.chunks[1:] == ((512, 512), (1024,))


def test_bad_chunks_are_refused(tmp_path) -> None:
    path = write_synthetic_raster(tmp_path / "t.tif", height=64, width=64, block=None)
    with pytest.raises(pipeline.ChunkingError):
        pipeline.open_raster(path, chunks={"z": 3})
    with pytest.raises(pipeline.ChunkingError):
        pipeline.open_raster(path, chunks=(0, 4))


def test_nodata_tags_and_descriptions_are_preserved(shared_data) -> None:
    da = pipeline.open_raster(shared_data / "all-nodata.tif")
    assert da.rio.nodata == 0
    assert da.attrs["long_name"] == ("blue", "green", "red", "nir")
    assert "TIFFTAG_DATETIME" in da.attrs


def test_token_changes_when_the_file_is_rewritten(tmp_path) -> None:
    path = tmp_path / "t.tif"
    write_synthetic_raster(path, height=64, width=64, block=None, seed=1)
    first = pipeline.open_raster(path)
    assert first.data.name == pipeline.open_raster(path).data.name
    assert first.data.name.startswith("pipeline-open-")
    st = os.stat(path)
    write_synthetic_raster(path, height=64, width=64, block=None, seed=2)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert pipeline.open_raster(path).data.name != first.data.name


def _file(path, content: bytes):
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.tif", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: _file(d / "empty.tif", b""), "empty file"),
        (lambda d: _file(d / "text.tif", b"not a raster\n"), "not a readable raster"),
    ],
)
def test_bad_inputs_raise_a_one_line_error_naming_the_file(tmp_path, make, message) -> None:
    path = make(tmp_path)
    with pytest.raises(pipeline.RasterInputError, match=message) as info:
        pipeline.open_raster(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_a_file_of_several_images_is_refused_naming_one(tmp_path) -> None:
    """A multi-page TIFF: GDAL lists its pages as subdatasets, rioxarray opens them all."""
    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "pages.tif"
    tifffile.imwrite(path, np.zeros((8, 8), "uint8"))
    tifffile.imwrite(path, np.ones((8, 8), "uint8"), append=True)
    with rasterio.open(path) as ds:
        assert ds.count == 1 and len(ds.subdatasets) == 2
    with pytest.raises(pipeline.RasterInputError, match="holds 2 images") as info:
        pipeline.open_raster(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert repr(f"GTIFF_DIR:1:{path}") in message


def test_the_chunk_reader_refuses_to_run_without_block_info(shared_data) -> None:
    da = pipeline.open_raster(shared_data / "byte.tif")
    source = file_source(da)
    assert source is not None
    with pytest.raises(TypeError, match="block_info") as info:
        open_module._read_chunk(source.path, source.identity, list(source.bands), source.dtype)
    assert source.path in str(info.value)


def test_corrupt_tile_error_names_the_file_and_window(shared_data, tmp_path) -> None:
    da = pipeline.open_raster(shared_data / "corrupt.tif")  # header is fine, tiles are not
    with pytest.raises(pipeline.RasterInputError, match="corrupt or unreadable") as info:
        da.compute(scheduler="threads")
    assert "corrupt.tif" in str(info.value)


def test_band_selection(shared_data) -> None:
    src = shared_data / "RGB.byte.tif"
    da = pipeline.open_raster(src, bands=[3, 1])
    np.testing.assert_array_equal(da.values, rasterio.open(src).read([3, 1]))
    with pytest.raises(pipeline.RasterInputError, match="out of range"):
        pipeline.open_raster(src, bands=[4])


@pytest.fixture
def rgb_overviews(shared_data, tmp_path) -> str:
    path = tmp_path / "rgb.tif"
    path.write_bytes((shared_data / "RGB.byte.tif").read_bytes())
    with rasterio.open(path, "r+") as ds:
        ds.build_overviews([2, 4, 8], Resampling.average)
    return str(path)


def test_open_an_overview_level(rgb_overviews) -> None:
    assert overview_shapes(rgb_overviews) == [(359, 396), (180, 198), (90, 99)]
    da = pipeline.open_raster(rgb_overviews, overview_level=1)
    with rasterio.open(rgb_overviews, overview_level=1) as ds:
        expected, transform, (by, bx) = ds.read(), ds.transform, ds.block_shapes[0]
    assert da.shape == (3, 180, 198)
    assert da.rio.transform() == transform
    assert chunking.is_block_aligned(da.data.chunks[1], by)
    assert chunking.is_block_aligned(da.data.chunks[2], bx)
    np.testing.assert_array_equal(da.values, expected)
    full = pipeline.open_raster(rgb_overviews)
    assert da.data.name != full.data.name
    assert da.rio.bounds() == pytest.approx(full.rio.bounds())


def test_a_missing_overview_level_is_refused(rgb_overviews, shared_data) -> None:
    with pytest.raises(pipeline.RasterInputError, match="no overview level 3"):
        pipeline.open_raster(rgb_overviews, overview_level=3)
    with pytest.raises(pipeline.RasterInputError, match="has 0 overview"):
        pipeline.open_raster(shared_data / "byte.tif", overview_level=0)
    assert overview_shapes(shared_data / "byte.tif") == []


def test_file_source_only_for_the_untouched_array(shared_data) -> None:
    path = shared_data / "RGB.byte.tif"
    da = pipeline.open_raster(path, bands=[3, 1])
    source = file_source(da)
    st = os.stat(path)
    identity = (os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    assert source == FileSource(
        os.path.abspath(path), (3, 1), None, da.data.name, (2, 718, 791), "|u1", identity
    )
    np.testing.assert_array_equal(
        read_source_window(source, (10, 50), (700, 791)), da[:, 10:50, 700:].values
    )
    assert file_source(da.rio.write_nodata(0)) == source  # metadata only: same pixels
    assert file_source(da.isel(x=slice(0, 100))) is None
    assert file_source(da.chunk({"y": 100, "x": 100})) is None
    assert file_source(da + 1) is None
    assert file_source(pipeline.apply_kernel(da, "focal-max")) is None
    assert file_source(da.compute()) is None
