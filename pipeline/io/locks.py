"""Write locks matched to the active dask scheduler, and compression in parallel under them."""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Any

from xarray.backends.locks import get_write_lock

from pipeline.io.vsi import _libgdal


def write_lock(key: str) -> Any:
    """A lock for serialising writes to one file under the scheduler in use right now.

    xarray's helper picks a ``distributed.Lock`` (named ``key``, shared by every worker) when a
    distributed client is active, a ``multiprocessing.Lock`` for the processes scheduler, and a
    ``SerializableLock`` for threads.
    """
    return get_write_lock(key)


_held = threading.local()


def _stack() -> list[tuple[bool, bytes | None]]:
    """What each `CompressingLock` held by this thread replaced, innermost last."""
    if not hasattr(_held, "stack"):
        _held.stack = []
    stack: list[tuple[bool, bytes | None]] = _held.stack
    return stack


def _threads() -> int:
    from dask.system import CPU_COUNT  # affinity and the cgroup CPU quota

    return max(1, int(CPU_COUNT))


def _set_thread_config(name: bytes, value: bytes | None) -> bytes | None:
    """Set GDAL's thread-local config option ``name`` (None unsets it); the old value, or None
    when it was unset. Raises OSError when libgdal's functions cannot be reached."""
    lib = _libgdal()
    if lib is None:
        raise OSError("libgdal not found")
    get, put = lib.CPLGetThreadLocalConfigOption, lib.CPLSetThreadLocalConfigOption
    get.argtypes, get.restype = [ctypes.c_char_p, ctypes.c_char_p], ctypes.c_char_p
    put.argtypes, put.restype = [ctypes.c_char_p, ctypes.c_char_p], None
    old: bytes | None = get(name, None)
    put(name, value)
    return old


@dataclass
class CompressingLock:
    """A write lock under which GDAL compresses the tiles it writes with several threads.

    rioxarray's writer holds the lock while it opens the output, writes one chunk and closes
    it, so GDAL compresses that chunk's tiles inside the lock, and every other task waits for
    it. While this lock is held, the holding thread's ``GDAL_NUM_THREADS`` (a thread-local
    GDAL setting, the GTiff driver's ``NUM_THREADS`` when it opens the file) is ``threads``:
    the tiles of the chunk are compressed in parallel, so the lock is held for a fraction of
    the time (``benchmarks/RESULTS.md``). Everything else keeps the workers'
    ``GDAL_NUM_THREADS`` (1: dask's threads are the parallelism).

    Parameters
    ----------
    lock : lock
        The lock serialising the writes (``acquire``/``release``); pickled with this object.
    threads : int, optional
        Compression threads; default the cores of the process holding the lock.
    """

    lock: Any
    threads: int | None = None

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        ok = bool(self.lock.acquire(*args, **kwargs))
        if ok:
            threads = self.threads if self.threads and self.threads > 0 else _threads()
            try:
                previous = (True, _set_thread_config(b"GDAL_NUM_THREADS", str(threads).encode()))
            except (OSError, AttributeError):  # no libgdal to reach: compress on one thread
                previous = (False, None)
            _stack().append(previous)  # a stack: locks of two outputs may nest in a thread
        return ok

    def release(self) -> None:
        stack = _stack()
        changed, previous = stack.pop() if stack else (False, None)
        try:
            if changed:
                _set_thread_config(b"GDAL_NUM_THREADS", previous)
        finally:
            self.lock.release()

    def __enter__(self) -> CompressingLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def locked(self) -> bool:
        return bool(self.lock.locked())
