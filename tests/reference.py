"""Independent references the kernel tests compare against, in plain numpy."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def window_filter(values: np.ndarray, func: Callable[[np.ndarray], float], size: int) -> np.ndarray:
    """``func`` of each ``size`` x ``size`` window (flattened, row-major, as float64) centred on
    every pixel of a 2-D array, NaN outside it: ``scipy.ndimage.generic_filter(values, func,
    size=size, mode="constant", cval=np.nan)``, one Python call per pixel.
    """
    if values.ndim != 2 or size % 2 != 1:
        raise ValueError("a 2-D array and an odd window size")
    pad = size // 2
    padded = np.pad(values.astype(np.float64), pad, constant_values=np.nan)
    windows = sliding_window_view(padded, (size, size)).reshape(*values.shape, size * size)
    out = np.empty(values.shape, dtype=np.float64)
    for index in np.ndindex(values.shape):
        out[index] = func(windows[index].copy())
    return out.astype(values.dtype)
