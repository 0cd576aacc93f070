"""Kernel parameters: parsing command-line strings and checking values (no kernel logic)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import KernelError

if TYPE_CHECKING:
    from pipeline.kernels.registry import KernelSpec


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


def parse_param_strings(spec: KernelSpec, items: Iterable[str]) -> dict[str, Any]:
    """``["key=value", ...]`` from the command line as typed parameters of ``spec``.

    Raises
    ------
    KernelError
        Malformed item, unknown parameter, repeated parameter or unparsable value.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise KernelError(f"--param {item!r}: expected key=value")
        if key not in spec.params:
            raise KernelError(
                f"kernel {spec.name!r} has no parameter {key!r}; "
                f"it takes {sorted(spec.params) or 'none'}"
            )
        if key in out:
            raise KernelError(f"--param {key!r} given twice for kernel {spec.name!r}")
        try:
            out[key] = spec.parser_for(key)(text)
        except (TypeError, ValueError, KernelError) as err:
            raise KernelError(
                f"kernel {spec.name!r}: parameter {key!r} expects {spec.type_name(key)}, "
                f"got {text!r} ({err})"
            ) from None
    return out


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
