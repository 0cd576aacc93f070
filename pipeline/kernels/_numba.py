"""The one numba decorator of the built-in kernels: `nogil_kernel`.

Every compiled loop in `pipeline.kernels` uses it, so they all share the same settings:

- ``nogil=True``: chunks run in parallel on dask's threads (`holds_gil` sees it, so
  `apply_kernel` does not warn);
- ``cache=False``: numba's on-disk cache stays off (nothing is written next to the installed
  package); each process compiles a loop on its first call;
- no ``parallel=True``: dask already keeps every core busy, and numba's own threads inside
  dask's threads oversubscribe them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast, overload

import numba

F = TypeVar("F", bound=Callable[..., Any])
ErrorModel = Literal["python", "numpy"]

#: Options every built-in kernel loop is compiled with (``error_model`` may be chosen).
NOGIL_OPTIONS: dict[str, Any] = {"nogil": True, "cache": False}


@overload
def nogil_kernel(func: F, /) -> F: ...


@overload
def nogil_kernel(*, error_model: ErrorModel = "python") -> Callable[[F], F]: ...


def nogil_kernel(func: F | None = None, /, *, error_model: ErrorModel = "python") -> Any:
    """Compile ``func`` with ``numba.njit`` and the shared kernel options (`NOGIL_OPTIONS`).

    Parameters
    ----------
    func : callable, optional
        The loop to compile; without it, returns a decorator (``@nogil_kernel(...)``).
    error_model : {"python", "numpy"}
        numba's error model: ``"python"`` (numba's default) raises on division by zero;
        ``"numpy"`` returns inf or NaN as numpy does, and lets numba vectorise more.

    Returns
    -------
    numba dispatcher or decorator
        The compiled function (compiled on first call, for each argument type).

    Examples
    --------
    >>> @nogil_kernel
    ... def _double_core(src, out):
    ...     out[:] = 2 * src
    """

    def decorate(f: F) -> F:
        return cast(F, numba.njit(**NOGIL_OPTIONS, error_model=error_model)(f))

    return decorate if func is None else decorate(func)
