"""Kernel parameters: parsers for command-line strings and value checks (no kernel logic).

A leaf module: it imports nothing from `pipeline.kernels`, so the registry and every kernel
can use it. Parsing ``key=value`` items against a `KernelSpec` is
`pipeline.kernels.registry.parse_param_strings`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.errors import KernelError


def parse_bool(text: str) -> bool:
    """``true/false``, ``yes/no``, ``on/off``, ``1/0`` (any case) as a bool."""
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def parser_for_default(default: Any) -> Callable[[str], Any]:
    """Parser for a parameter with this default: bool, int, float, else str."""
    if isinstance(default, bool):
        return parse_bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    return str


def check_number(
    spec_name: str,
    param: str,
    value: Any,
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> float:
    """``value`` as a finite number within ``[low, high]``; `KernelError` otherwise."""
    ok_types: tuple[type, ...] = (int, np.integer) if integer else (int, float, np.number)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        kind = "an integer" if integer else "a number"
        raise KernelError(f"kernel {spec_name!r}: {param} must be {kind}, got {value!r}")
    number = float(np.asarray(value, dtype=np.float64))
    if not math.isfinite(number):
        raise KernelError(f"kernel {spec_name!r}: {param} must be finite, got {value!r}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise KernelError(
            f"kernel {spec_name!r}: {param} must be in [{low}, {high}], got {value!r}"
        )
    return number
