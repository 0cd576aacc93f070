"""Per-pixel value kernels: ``rescale``, ``cast`` and ``threshold``.

Values are converted through float64. Nodata pixels (the input's nodata value, and NaN in
float inputs) become the output's nodata. Conversions to an integer type round to the nearest
integer (ties away from zero, as GDAL does) and clip to the type's range; when the output's
nodata value is the lowest or highest value of that type, valid pixels clip just short of it
so that they never read as nodata.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pipeline.errors import KernelError
from pipeline.kernels._numba import nogil_kernel
from pipeline.kernels.params import check_number
from pipeline.kernels.registry import REQUIRED, KernelSpec, register_kernel

#: Output types accepted by ``cast`` and ``rescale`` (what GeoTIFF stores).
DTYPES = (
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "uint64",
    "int64",
    "float32",
    "float64",
)


def nodata_args(nodata: Any) -> tuple[bool, float]:
    """``(has_nodata, value)`` for numba loops (NaN needs no value: NaN is always nodata)."""
    if nodata is None or math.isnan(float(nodata)):
        return False, 0.0
    return True, float(nodata)


def out_nodata_arg(out_nodata: Any, dtype: np.dtype[Any]) -> Any:
    """``out_nodata`` as a scalar of ``dtype`` (0 when there is none: never written then)."""
    return dtype.type(0 if out_nodata is None else out_nodata)


def check_dtype(kernel: str, value: Any) -> np.dtype[Any]:
    """``value`` as one of `DTYPES`; `KernelError` otherwise."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or dtype.name not in DTYPES:
        raise KernelError(
            f"kernel {kernel!r}: dtype must be one of {', '.join(DTYPES)}; got {value!r}"
        )
    return dtype


def _float_bounds(dtype: np.dtype[Any]) -> tuple[float, float]:
    """Lowest and highest float64 values that convert to ``dtype`` without overflow."""
    if dtype.kind == "f":
        top = float(np.finfo(dtype).max)
        return -top, top
    info = np.iinfo(dtype)
    lo, hi = float(info.min), float(info.max)
    if hi > info.max:  # 2**63 - 1 and 2**64 - 1 round up as float64
        hi = float(np.nextafter(hi, -math.inf))
    return lo, hi


def _clip_bounds(dtype: np.dtype[Any], out_nodata: Any) -> tuple[float, float]:
    lo, hi = _float_bounds(dtype)
    if dtype.kind in "iu" and out_nodata is not None:
        # Step inside by one value (or by one float64 step where 1 is below float64 precision).
        if float(out_nodata) == hi:
            hi = hi - 1.0 if hi - 1.0 != hi else float(np.nextafter(hi, -math.inf))
        elif float(out_nodata) == lo:
            lo = lo + 1.0 if lo + 1.0 != lo else float(np.nextafter(lo, math.inf))
    return lo, hi


@nogil_kernel
def _convert_core(
    src,
    has_nodata,
    nodata,
    in_min,
    scale,
    out_min,
    range_lo,
    range_hi,
    type_lo,
    type_hi,
    to_int,
    out_nodata,
    out,
):
    nb, ny, nx = src.shape
    for b in range(nb):
        for r in range(ny):
            for c in range(nx):
                v = np.float64(src[b, r, c])
                if v != v or (has_nodata and v == nodata):
                    out[b, r, c] = out_nodata
                    continue
                v = out_min + (v - in_min) * scale
                v = min(max(v, range_lo), range_hi)
                if to_int:
                    v = np.floor(v + 0.5) if v >= 0.0 else np.ceil(v - 0.5)
                out[b, r, c] = min(max(v, type_lo), type_hi)


def rescale(
    block: np.ndarray,
    *,
    in_min: float,
    in_max: float,
    out_min: float = 0.0,
    out_max: float = 1.0,
    dtype: str = "float32",
    clip: bool = True,
    nodata: Any = None,
    out_nodata: Any = None,
) -> np.ndarray:
    """Map ``[in_min, in_max]`` linearly onto ``[out_min, out_max]`` and convert to ``dtype``.

    Parameters
    ----------
    block : ndarray
        ``(band, y, x)`` values.
    in_min, in_max : float
        Input values mapped to ``out_min`` and ``out_max`` (must differ).
    out_min, out_max : float, default 0.0 and 1.0
        Output range (``out_min > out_max`` inverts).
    dtype : str, default "float32"
        One of `DTYPES`.
    clip : bool, default True
        Clip results to the output range (always to the dtype's range).
    nodata, out_nodata
        Context from `apply_kernel` (see `KernelSpec`).

    Returns
    -------
    ndarray
        ``(band, y, x)`` of ``dtype``; ``out_nodata`` where the input is nodata or NaN.
    """
    dt = np.dtype(dtype)
    out = np.empty(block.shape, dtype=dt)
    lo, hi = _clip_bounds(dt, out_nodata)
    range_lo, range_hi = lo, hi
    if clip:  # the requested range, within what the dtype holds (rounding stays in range)
        range_lo, range_hi = max(min(out_min, out_max), lo), min(max(out_min, out_max), hi)
    has, value = nodata_args(nodata)
    scale = (out_max - out_min) / (in_max - in_min)
    _convert_core(
        block,
        has,
        value,
        float(in_min),
        scale,
        float(out_min),
        float(range_lo),
        float(range_hi),
        lo,
        hi,
        dt.kind in "iu",
        out_nodata_arg(out_nodata, dt),
        out,
    )
    return out


def cast(
    block: np.ndarray, *, dtype: str, nodata: Any = None, out_nodata: Any = None
) -> np.ndarray:
    """Convert to ``dtype``, rounding to the nearest integer and clipping to its range.

    Parameters
    ----------
    block : ndarray
        ``(band, y, x)`` values.
    dtype : str
        One of `DTYPES`.
    nodata, out_nodata
        Context from `apply_kernel` (see `KernelSpec`).

    Returns
    -------
    ndarray
        ``(band, y, x)`` of ``dtype``; ``out_nodata`` where the input is nodata or NaN.
    """
    dt = np.dtype(dtype)
    out = np.empty(block.shape, dtype=dt)
    lo, hi = _clip_bounds(dt, out_nodata)
    has, value = nodata_args(nodata)
    _convert_core(
        block,
        has,
        value,
        0.0,
        1.0,
        0.0,
        lo,
        hi,
        lo,
        hi,
        dt.kind in "iu",
        out_nodata_arg(out_nodata, dt),
        out,
    )
    return out


@nogil_kernel
def _threshold_core(src, value, has_nodata, nodata, out_nodata, out):
    nb, ny, nx = src.shape
    for b in range(nb):
        for r in range(ny):
            for c in range(nx):
                v = np.float64(src[b, r, c])
                if v != v or (has_nodata and v == nodata):
                    out[b, r, c] = out_nodata
                elif v > value:
                    out[b, r, c] = 1
                else:
                    out[b, r, c] = 0


def threshold(
    block: np.ndarray, *, value: float, nodata: Any = None, out_nodata: Any = None
) -> np.ndarray:
    """1 where the pixel is strictly above ``value``, else 0.

    Parameters
    ----------
    block : ndarray
        ``(band, y, x)`` values.
    value : float
        The threshold.
    nodata, out_nodata
        Context from `apply_kernel` (see `KernelSpec`).

    Returns
    -------
    ndarray
        ``(band, y, x)`` uint8; ``out_nodata`` (255) where the input is nodata or NaN.
    """
    out = np.empty(block.shape, dtype=np.uint8)
    has, nd = nodata_args(nodata)
    _threshold_core(block, float(value), has, nd, out_nodata_arg(out_nodata, out.dtype), out)
    return out


def _validate_rescale(params: dict[str, Any], n_bands: int) -> dict[str, Any]:
    for key in ("in_min", "in_max", "out_min", "out_max"):
        params[key] = check_number("rescale", key, params[key])
    if params["in_min"] == params["in_max"]:
        raise KernelError(f"kernel 'rescale': in_min and in_max are equal ({params['in_min']!r})")
    params["dtype"] = check_dtype("rescale", params["dtype"]).name
    if not isinstance(params["clip"], bool | np.bool_):
        raise KernelError(f"kernel 'rescale': clip must be true or false, got {params['clip']!r}")
    params["clip"] = bool(params["clip"])
    return params


def _validate_cast(params: dict[str, Any], n_bands: int) -> dict[str, Any]:
    params["dtype"] = check_dtype("cast", params["dtype"]).name
    return params


def _validate_threshold(params: dict[str, Any], n_bands: int) -> dict[str, Any]:
    params["value"] = check_number("threshold", "value", params["value"])
    return params


def _dtype_param(dt: np.dtype[Any], params: dict[str, Any]) -> np.dtype[Any]:
    return check_dtype("cast/rescale", params["dtype"])


RESCALE = register_kernel(
    KernelSpec(
        name="rescale",
        func=rescale,
        description="linear stretch from [in_min, in_max] to [out_min, out_max], then dtype",
        output_dtype=_dtype_param,
        params={
            "in_min": REQUIRED,
            "in_max": REQUIRED,
            "out_min": 0.0,
            "out_max": 1.0,
            "dtype": "float32",
            "clip": True,
        },
        param_types={"in_min": float, "in_max": float},
        nodata="kernel",
        validate=_validate_rescale,
        units="",
        releases_gil=True,
    )
)

CAST = register_kernel(
    KernelSpec(
        name="cast",
        func=cast,
        description="convert to dtype (rounded to nearest, clipped to the dtype's range)",
        output_dtype=_dtype_param,
        params={"dtype": REQUIRED},
        nodata="kernel",
        validate=_validate_cast,
        releases_gil=True,
    )
)

THRESHOLD = register_kernel(
    KernelSpec(
        name="threshold",
        func=threshold,
        description="1 where the value is above `value`, else 0 (uint8, nodata 255)",
        output_dtype=np.uint8,
        params={"value": REQUIRED},
        param_types={"value": float},
        nodata="kernel",
        output_nodata=255,
        validate=_validate_threshold,
        units="",
        releases_gil=True,
    )
)
