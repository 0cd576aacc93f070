"""Kernel registry: named, GIL-releasing block functions applied by `pipeline.apply_kernel`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.errors import KernelError

BlockFunc = Callable[..., np.ndarray]


@dataclass(frozen=True)
class KernelSpec:
    """What `apply_kernel` needs to know about a kernel.

    Attributes
    ----------
    name : str
        Registry name, also used in dask layer names (``pipeline-<name>-<token>``).
    func : callable
        ``func(block: ndarray[band, y, x], **params) -> ndarray[band, y, x]``; must release
        the GIL (numba ``nogil=True`` or numpy ufuncs) to scale over threads.
    description : str
        One line for ``pipeline kernels``.
    depth : int
        Halo in pixels needed on each side (0: ``map_blocks``).
    whole_band_axis : bool
        The kernel mixes bands, so the band axis must be one chunk.
    output_dtype : callable
        Maps the input dtype to the output dtype.
    params : dict
        Parameter names and defaults.
    """

    name: str
    func: BlockFunc
    description: str
    depth: int = 0
    whole_band_axis: bool = False
    output_dtype: Callable[[np.dtype[Any]], np.dtype[Any]] = lambda dt: dt
    params: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, KernelSpec] = {}


def register_kernel(spec: KernelSpec) -> KernelSpec:
    """Add ``spec`` to the registry (replacing a kernel of the same name) and return it."""
    _REGISTRY[spec.name] = spec
    return spec


def get_kernel(name: str) -> KernelSpec:
    """The registered kernel called ``name``; `KernelError` listing the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KernelError(f"unknown kernel {name!r}; known kernels: {known}") from None


def list_kernels() -> list[KernelSpec]:
    """All registered kernels, sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


from pipeline.kernels import reverse_bands as _reverse_bands  # noqa: E402  (registers itself)

__all__ = ["KernelSpec", "get_kernel", "list_kernels", "register_kernel"]
del _reverse_bands
