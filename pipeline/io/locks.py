"""Write locks matched to the active dask scheduler."""

from __future__ import annotations

from typing import Any

from xarray.backends.locks import get_write_lock


def write_lock(key: str) -> Any:
    """A lock for serialising writes to one file under the scheduler in use right now.

    xarray's helper picks a ``distributed.Lock`` (named ``key``, shared by every worker) when a
    distributed client is active, a ``multiprocessing.Lock`` for the processes scheduler, and a
    ``SerializableLock`` for threads.
    """
    return get_write_lock(key)
