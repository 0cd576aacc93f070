"""The seed kernel of rasterio's "Concurrent processing" guide: reverse bands, inefficiently.

Same semantics as rasterio's ``_example.compute``: every value is converted to float64, has 1.0
added to it two thousand times, 2000.0 subtracted, and is cast back and written to the mirrored
band index. The result equals ``block[::-1]`` for integer data; it is deliberately CPU-bound and
releases the GIL, so it measures how well a runner scales over cores.
"""

from __future__ import annotations

import numpy as np

from pipeline.kernels._numba import nogil_kernel
from pipeline.kernels.registry import KernelSpec, register_kernel


@nogil_kernel
def _reverse_bands_inefficiently(src: np.ndarray, out: np.ndarray) -> None:
    nb, ny, nx = src.shape
    for i in range(nb):
        for j in range(ny):
            for k in range(nx):
                val = np.float64(src[i, j, k])
                for _ in range(2000):
                    val += 1.0
                val -= 2000.0
                out[nb - 1 - i, j, k] = val


def reverse_bands(block: np.ndarray) -> np.ndarray:
    """Reverse the band axis of a ``(band, y, x)`` block through the CPU-heavy seed loop."""
    out = np.empty_like(block)
    _reverse_bands_inefficiently(block, out)
    return out


SPEC = register_kernel(
    KernelSpec(
        name="reverse-bands",
        func=reverse_bands,
        description="rasterio's seed kernel: reverse band order, adding 1.0 2000 times per value",
        whole_band_axis=True,
        nodata="none",  # values, nodata included, are moved between bands untouched
        releases_gil=True,
    )
)
