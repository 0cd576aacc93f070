"""glibc heap settings for thread workers in this process (no-ops elsewhere).

distributed gives the worker processes it spawns ``MALLOC_TRIM_THRESHOLD_`` (its
``distributed.nanny.pre-spawn-environ``) so that freed memory goes back to the OS. glibc reads
that variable at start-up only, so thread workers of a LocalCluster in this process never get
it: `trim_freed_memory` applies the same setting with ``mallopt``. Without it glibc raises its
mmap threshold after every large ``free`` and keeps freed chunk and block-cache buffers in the
heap, and the peak memory of a large reprojection creeps up during the run
(benchmarks/RESULTS.md has the figures).

The price is page faults for buffers above the mmap threshold: a few percent of a
reprojection, more in the overview and COG-copy steps, where GDAL churns through its block
cache. Those steps run
in the client alone, after the dask work, so `reuse_freed_memory` lifts the threshold for them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
from collections.abc import Iterator
from typing import Any

#: ``mallopt`` parameter numbers (glibc malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc's default (and minimum dynamic) mmap threshold, and its largest dynamic one.
_DEFAULT_MMAP_THRESHOLD = 128 * 1024
_MAX_MMAP_THRESHOLD = 32 * 2**20

_state: dict[str, Any] = {"libc": None, "trim": None}


def _glibc() -> Any:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def trim_freed_memory(threshold: Any) -> bool:
    """Make glibc return freed heap memory beyond ``threshold`` bytes to the OS.

    The mmap threshold, which may have grown during imports already, goes back to glibc's
    default; the fixed trim threshold then keeps it from growing again (as the environment
    variable does).

    Returns
    -------
    bool
        True if applied; False (doing nothing) off glibc, when ``threshold`` is not an
        integer, or when ``MALLOC_TRIM_THRESHOLD_`` was set for this process (glibc applied
        the user's own value at start-up).
    """
    if "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        value = int(threshold)
    except (TypeError, ValueError):
        return False
    libc = _glibc()
    if libc is None:
        return False
    applied = bool(libc.mallopt(_M_TRIM_THRESHOLD, value)) and bool(
        libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_MMAP_THRESHOLD)
    )
    if applied:
        _state["libc"], _state["trim"] = libc, value
    return applied


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Within the block, serve buffers up to 32 MiB from the heap; trim it afterwards.

    For single-process GDAL work (overviews, COG copy) after `trim_freed_memory`: avoids a
    fresh mmap, and its page faults, for every block GDAL allocates. A no-op otherwise.
    """
    libc = _state["libc"]
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _MAX_MMAP_THRESHOLD)
    libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MAX_MMAP_THRESHOLD)  # glibc's dynamic pairing
    try:
        yield
    finally:
        libc.mallopt(_M_TRIM_THRESHOLD, _state["trim"])
        libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_MMAP_THRESHOLD)
        libc.malloc_trim(0)
