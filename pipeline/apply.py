"""Apply a registered kernel lazily to every chunk with ``map_blocks``."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from dask.base import tokenize

from pipeline.errors import KernelError
from pipeline.kernels import KernelSpec, get_kernel


def apply_kernel(da: xr.DataArray, kernel: str | KernelSpec, **params: Any) -> xr.DataArray:
    """Apply ``kernel`` to every chunk of ``da``, lazily.

    Parameters
    ----------
    da : xarray.DataArray
        Dask-backed ``(band, y, x)`` array, e.g. from `open_raster`.
    kernel : str or KernelSpec
        A registered kernel name (see ``pipeline kernels``) or a spec.
    **params
        Kernel parameters (unknown names are refused).

    Returns
    -------
    xarray.DataArray
        Same coordinates, CRS, transform and attributes; dtype as the kernel declares. Nothing
        is computed: the kernel runs through ``dask.array.map_blocks`` with ``dtype`` and
        ``meta`` given, in a graph layer named ``pipeline-<kernel>-<token>``.
    """
    spec = get_kernel(kernel) if isinstance(kernel, str) else kernel
    unknown = set(params) - set(spec.params)
    if unknown:
        raise KernelError(
            f"kernel {spec.name!r} has no parameter(s) {sorted(unknown)!r}; "
            f"it takes {sorted(spec.params) or 'none'}"
        )
    if da.dims != ("band", "y", "x"):
        raise KernelError(f"kernels expect dims ('band', 'y', 'x'), got {da.dims!r}")
    if da.dtype.kind not in "biuf":
        source = da.encoding.get("source", "input")
        raise KernelError(
            f"{source}: unsupported data type {da.dtype.name!r} for kernel {spec.name!r} "
            "(integer, float or bool rasters only)"
        )
    if spec.depth:
        raise KernelError(f"kernel {spec.name!r} needs a halo, which is not supported yet")
    if not hasattr(da.data, "dask"):
        da = da.chunk()
    if spec.whole_band_axis and len(da.data.chunks[0]) > 1:
        da = da.chunk({"band": -1})
    kwargs = {**spec.params, **params}
    out_dtype = np.dtype(spec.output_dtype(da.dtype))
    data = da.data.map_blocks(
        spec.func,
        name=f"pipeline-{spec.name}-{tokenize(da.data.name, spec.name, kwargs)}",
        dtype=out_dtype,
        meta=np.empty((0, 0, 0), dtype=out_dtype),
        **kwargs,
    )
    out = da.copy(data=data)
    out.encoding = dict(da.encoding)
    return out
