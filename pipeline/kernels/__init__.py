"""Kernel registry and built-in kernels, applied by `pipeline.apply_kernel`.

One kernel family per module; each registers itself on import:

- ``reverse_bands``: ``reverse-bands`` (the seed kernel)
- ``band_math``: ``band-math`` (arithmetic over bands, e.g. NDVI)
- ``terrain``: ``slope``, ``aspect``, ``hillshade`` (Horn's method)
- ``focal``: ``focal-mean``, ``focal-min``, ``focal-max`` (square windows)
- ``pointwise``: ``rescale``, ``cast``, ``threshold``

Every built-in is a numba loop compiled with `nogil_kernel` (``njit(nogil=True)``, no on-disk
cache), so chunks run in parallel on threads; user kernels may use it too.
"""

from __future__ import annotations

from pipeline.kernels import band_math as _band_math
from pipeline.kernels import focal as _focal
from pipeline.kernels import pointwise as _pointwise
from pipeline.kernels import reverse_bands as _reverse_bands
from pipeline.kernels import terrain as _terrain
from pipeline.kernels._numba import nogil_kernel
from pipeline.kernels.registry import (
    ENTRY_POINT_GROUP,
    REQUIRED,
    KernelSpec,
    get_kernel,
    list_kernels,
    parse_param_strings,
    register_kernel,
    resolve_kernel,
    spec_from_callable,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "REQUIRED",
    "KernelSpec",
    "get_kernel",
    "list_kernels",
    "nogil_kernel",
    "parse_param_strings",
    "register_kernel",
    "resolve_kernel",
    "spec_from_callable",
]
del _reverse_bands, _band_math, _focal, _pointwise, _terrain
