"""apply_kernel: laziness, metadata, layer names, halos, edges and nodata, for every kernel."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import rasterio
from hypothesis import strategies as st

import pipeline
from pipeline.kernels.testing import georeferenced, synthetic_dem
from tests.conftest import raise_if_dask_computes

#: One parameter set per built-in kernel (the ones with required parameters get values).
BUILTIN_PARAMS: dict[str, dict[str, object]] = {
    "reverse-bands": {},
    "band-math": {"expr": "b1 * 2 - 1"},
    "slope": {},
    "aspect": {},
    "hillshade": {},
    "focal-mean": {},
    "focal-min": {"size": 5},
    "focal-max": {},
    "rescale": {"in_min": 0, "in_max": 1500, "dtype": "uint8", "out_max": 254},
    "cast": {"dtype": "int16"},
    "threshold": {"value": 600},
}


@st.composite
def chunkings(draw: st.DrawFn, n: int) -> tuple[int, ...]:
    """Irregular chunk sizes summing to ``n``, from a single chunk down to 1-pixel chunks."""
    cuts = draw(st.sets(st.integers(1, n - 1), max_size=n - 1)) if n > 1 else set()
    edges = [0, *sorted(cuts), n]
    return tuple(b - a for a, b in itertools.pairwise(edges))


def _dem(nodata: float | None = -9999.0) -> np.ndarray:
    dem = synthetic_dem(20, 24, seed=2)
    if nodata is not None:
        dem[0, 5:8, 9:13] = nodata
    return dem


def test_every_builtin_kernel_is_covered() -> None:
    assert {k.name for k in pipeline.list_kernels()} >= set(BUILTIN_PARAMS)


@pytest.mark.parametrize("name", sorted(BUILTIN_PARAMS))
def test_builtins_are_lazy_keep_georeferencing_and_name_their_layer(name) -> None:
    da = georeferenced(_dem(), nodata=-9999.0).chunk({"y": 8, "x": 10})
    da.attrs["title"] = "my dem"
    with raise_if_dask_computes():
        out = pipeline.apply_kernel(da, name, **BUILTIN_PARAMS[name])
        again = pipeline.apply_kernel(da, name, **BUILTIN_PARAMS[name])
    assert out.data.name.startswith(f"pipeline-{name}-")
    assert out.data.name == again.data.name  # deterministic (tokenize), not random
    assert out.rio.crs == da.rio.crs
    assert out.rio.transform() == da.rio.transform()
    np.testing.assert_array_equal(out.x, da.x)
    np.testing.assert_array_equal(out.y, da.y)
    assert out.attrs["title"] == "my dem"
    values = out.compute(scheduler="sync")
    assert values.dtype == out.dtype
    # Nodata in the input stays nodata in the output.
    hole = values.values[0, 5:8, 9:13]
    if name == "reverse-bands":
        assert (hole == -9999.0).all()
    elif out.dtype.kind == "f" and math.isnan(out.rio.nodata):
        assert np.isnan(hole).all()
    else:
        assert (hole == out.rio.nodata).all()


def test_parameters_change_the_layer_name() -> None:
    da = georeferenced(_dem())
    a = pipeline.apply_kernel(da, "focal-mean", size=3).data.name
    b = pipeline.apply_kernel(da, "focal-mean", size=5).data.name
    assert a != b and a.startswith("pipeline-focal-mean-")


def test_band_count_change_renumbers_bands_and_drops_per_band_attrs() -> None:
    data = np.stack([synthetic_dem(6, 7, seed=s)[0] for s in range(3)])
    da = georeferenced(data)
    da.attrs["long_name"] = ("red", "green", "blue")
    out = pipeline.apply_kernel(da.chunk({"band": 1}), "band-math", expr="b1 + b3")
    assert out.sizes["band"] == 1 and out.band.values.tolist() == [1]
    assert "long_name" not in out.attrs
    assert out.data.chunks[0] == (1,)
    np.testing.assert_allclose(out.values[0], data[0] + data[2], rtol=1e-6)


def test_halo_pixels_beyond_the_raster_edge_are_invalid_not_reflected() -> None:
    def valid_neighbours(block: np.ndarray, valid: np.ndarray) -> np.ndarray:
        nb, h, w = block.shape
        out = np.zeros((nb, h - 2, w - 2), dtype=np.int16)
        for dy in range(3):
            for dx in range(3):
                out += valid[:, dy : dy + h - 2, dx : dx + w - 2]
        return out

    spec = pipeline.KernelSpec(
        name="count-valid",
        func=valid_neighbours,
        description="number of valid pixels in each 3 x 3 window",
        depth=1,
        output_dtype="int16",
        nodata="none",
    )
    da = georeferenced(np.ones((1, 6, 7), dtype="float32")).chunk({"y": 2, "x": 3})
    got = pipeline.apply_kernel(da, spec).values[0]
    expected = np.full((6, 7), 9)
    expected[[0, -1], :] = 6
    expected[:, [0, -1]] = 6
    expected[[0, 0, -1, -1], [0, -1, 0, -1]] = 4
    np.testing.assert_array_equal(got, expected)


def test_chunks_smaller_than_the_halo_are_kept_and_results_unchanged() -> None:
    da = georeferenced(_dem(), nodata=-9999.0)
    whole = pipeline.apply_kernel(da, "focal-mean", size=5).values
    thin = da.chunk({"y": (1, 1, 3, 1, 2, 12), "x": 1})
    out = pipeline.apply_kernel(thin, "focal-mean", size=5)
    assert out.data.chunks == thin.data.chunks
    np.testing.assert_array_equal(out.values, whole)


@pytest.mark.parametrize("name", ["focal-mean", "slope", "threshold", "band-math"])
def test_one_task_per_output_chunk_in_one_layer(name) -> None:
    data = np.concatenate([_dem(), _dem()])
    da = georeferenced(data, nodata=-9999.0).chunk({"band": 1, "y": 5, "x": 6})
    with raise_if_dask_computes():
        out = pipeline.apply_kernel(da, name, **BUILTIN_PARAMS[name])
    graph = out.data.__dask_graph__()
    source_layers = set(da.data.__dask_graph__().layers)
    new_layers = [k for k in graph.layers if k not in source_layers]
    if name == "band-math":  # mixes bands: the band axis becomes one chunk first
        assert out.data.chunks == ((1,), *da.data.chunks[1:])
        new_layers = new_layers[-1:]
    else:
        assert out.data.chunks == da.data.chunks
        assert len(new_layers) == 1
    assert new_layers == [out.data.name]
    assert (
        len(graph.layers[out.data.name])
        == out.data.npartitions
        == 4 * 4 * (1 if name == "band-math" else 2)
    )
    assert out.data.dtype == out.data._meta.dtype == out.dtype


def test_kernels_returning_their_block_or_mask_are_not_overwritten_by_later_chunks() -> None:
    # Padded blocks and masks are reused between the tasks of a thread: a result that is a
    # view of either must keep its own memory.
    def inner(block: np.ndarray) -> np.ndarray:
        return block

    def mask(block: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return valid[:, 1:-1, 1:-1]

    dem = _dem()
    da = georeferenced(dem, nodata=-9999.0).chunk({"y": 6, "x": 7})
    for func, expected in [(inner, dem), (mask, dem != -9999.0)]:
        spec = pipeline.KernelSpec(
            name=func.__name__,
            func=func,
            description="view",
            depth=1,
            output_dtype=expected.dtype,
            nodata="none",
        )
        out = pipeline.apply_kernel(da, spec).compute(scheduler="sync")
        np.testing.assert_array_equal(out.values, expected)


def test_slope_output_writes_float32_with_nan_nodata_and_units(tmp_path, shared_data) -> None:
    da = pipeline.open_raster(shared_data / "shade.tif")
    out = pipeline.apply_kernel(da, "slope")
    assert "rasterio_dtype" not in out.encoding and "dtype" not in out.encoding
    path = pipeline.write_raster(out, tmp_path / "slope.tif")
    with rasterio.open(path) as ds, rasterio.open(shared_data / "shade.tif") as src:
        assert ds.dtypes == ("float32",) and math.isnan(ds.nodata)
        assert (ds.crs, ds.transform) == (src.crs, src.transform)
        assert ds.tags()["units"] == "degrees"
        np.testing.assert_array_equal(np.isnan(ds.read(1)), src.read(1) == 255)


def test_unsupported_dims_and_dtypes_are_refused() -> None:
    da = georeferenced(_dem())
    with pytest.raises(pipeline.KernelError, match="dims"):
        pipeline.apply_kernel(da.isel(band=0), "slope")
    with pytest.raises(pipeline.KernelError, match="unsupported data type"):
        pipeline.apply_kernel(da.astype("complex64"), "slope")


def test_user_kernel_output_is_masked_where_the_input_is_nodata() -> None:
    def double(block: np.ndarray) -> np.ndarray:
        return block * 2

    spec = pipeline.KernelSpec(name="double", func=double, description="x2")
    da = georeferenced(_dem(), nodata=-9999.0)
    out = pipeline.apply_kernel(da, spec).values[0]
    hole = np.zeros(out.shape, dtype=bool)
    hole[5:8, 9:13] = True
    assert (out[hole] == -9999.0).all()
    np.testing.assert_array_equal(out[~hole], _dem()[0][~hole] * 2)


def test_a_kernel_returning_the_wrong_shape_is_reported() -> None:
    spec = pipeline.KernelSpec(name="bad", func=lambda b: b[:, :1], description="bad")
    da = georeferenced(_dem())
    with pytest.raises(pipeline.KernelError, match=r"kernel 'bad' returned an array of shape"):
        pipeline.apply_kernel(da, spec).compute(scheduler="sync")
