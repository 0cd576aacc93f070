"""The seed kernel through apply_kernel: equals input[::-1], lazily, for any chunking."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

import pipeline
from pipeline.kernels.reverse_bands import reverse_bands
from pipeline.testing import synthetic_array, write_synthetic_raster
from tests.conftest import raise_if_dask_computes


def _reference_seed_loop(block: np.ndarray) -> np.ndarray:
    """rasterio's _example.compute written as plain numpy (independent of numba)."""
    val = block.astype(np.float64)
    for _ in range(2000):
        val = val + 1.0
    val = val - 2000.0
    return val.astype(block.dtype)[::-1]


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32"])
def test_kernel_matches_the_seed_loop_in_numpy(dtype) -> None:
    block = synthetic_array(3, 17, 23, dtype=dtype, seed=4)
    np.testing.assert_array_equal(reverse_bands(block), _reference_seed_loop(block))


def test_reverse_bands_on_rgb_byte_equals_reversed_input(shared_data) -> None:
    path = shared_data / "RGB.byte.tif"
    with raise_if_dask_computes():
        out = pipeline.apply_kernel(pipeline.open_raster(path), "reverse-bands")
    assert out.data.name.startswith("pipeline-reverse-bands-")
    with rasterio.open(path) as ds:
        np.testing.assert_array_equal(out.compute(scheduler="threads").values, ds.read()[::-1])
    assert out.rio.crs == pipeline.open_raster(path).rio.crs


@pytest.mark.parametrize(
    ("height", "width", "block", "chunks", "rounded"),
    [
        (517, 389, 128, 256, False),  # not block multiples of the raster size: ragged edges
        (300, 700, None, 100, True),  # striped: x rounded up to the full width, with a warning
        (64, 1000, 16, {"band": 1, "y": 16, "x": 48}, False),  # bands split across chunks
    ],
)
def test_reverse_bands_on_synthetic_rasters(tmp_path, height, width, block, chunks, rounded):
    path = write_synthetic_raster(
        tmp_path / "in.tif", bands=4, height=height, width=width, block=block
    )
    if rounded:
        with pytest.warns(pipeline.PipelineWarning, match="not multiples"):
            da = pipeline.open_raster(path, chunks=chunks)
    else:
        da = pipeline.open_raster(path, chunks=chunks)
    out = pipeline.apply_kernel(da, "reverse-bands")
    assert out.data.chunks[0] == (4,)
    with rasterio.open(path) as ds:
        np.testing.assert_array_equal(out.values, ds.read()[::-1])


def test_unknown_kernel_and_parameters_are_refused(shared_data) -> None:
    da = pipeline.open_raster(shared_data / "byte.tif")
    with pytest.raises(pipeline.KernelError, match=r"unknown kernel 'nope'.*reverse-bands"):
        pipeline.apply_kernel(da, "nope")
    with pytest.raises(pipeline.KernelError, match="no parameter"):
        pipeline.apply_kernel(da, "reverse-bands", factor=2)
