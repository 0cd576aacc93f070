"""Write locks matched to the active dask scheduler, and compression in parallel under them."""

from __future__ import annotations

import ctypes
import threading
import time
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


def _stack() -> list[tuple[bool, bytes | None, Any, float]]:
    """For each `CompressingLock` this thread holds, innermost last: whether GDAL's setting
    was changed, its old value, the lock's identity and when it was taken."""
    if not hasattr(_held, "stack"):
        _held.stack = []
    stack: list[tuple[bool, bytes | None, Any, float]] = _held.stack
    return stack


def _threads() -> int:
    from dask.system import CPU_COUNT  # affinity and the cgroup CPU quota

    return max(1, int(CPU_COUNT))


def _identity(lock: Any) -> Any:
    """What names ``lock`` in this process: a ``SerializableLock``'s token, a
    ``distributed.Lock``'s name, else the object."""
    if type(lock).__module__.split(".")[0] == "distributed":
        return ("distributed", getattr(lock, "name", id(lock)))
    return getattr(lock, "token", None) or id(lock)


@dataclass
class _Contention:
    """Moving averages, per lock, of how long this process's threads waited for it and held it."""

    wait: float = 0.0
    hold: float = 0.0
    holds: int = 0

    def contended(self) -> bool:
        """Threads wait, on average, more than a fifth of the time a holder holds the lock."""
        return self.holds > 0 and self.wait > 0.2 * self.hold


#: How much of each new measure goes into the averages.
_SMOOTHING = 0.3
_contention: dict[Any, _Contention] = {}
#: Locks (outputs) whose averages are kept.
_KEPT = 256
_guard = threading.Lock()


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
    the time. Everything else keeps the workers' ``GDAL_NUM_THREADS`` (1: dask's threads are
    the parallelism).

    By default the number follows the contention this process sees: all its cores once its
    threads wait for the lock, on average, more than a fifth of the time it is held (their
    cores would otherwise sit idle: ``bench_write_lock.py``, a focal mean of 8192 x 8192 x 3,
    0.74x the wall time); else one thread. Taking all the cores while the other threads
    compute their chunks only oversubscribes them (``bench_compute.py``, the seed kernel:
    1.02-1.07x the recipe's time instead of 1.00-1.02x).

    Parameters
    ----------
    lock : lock
        The lock serialising the writes (``acquire``/``release``); pickled with this object.
    threads : int, optional
        Compression threads, whatever the contention.
    """

    lock: Any
    threads: int | None = None

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        key = _identity(self.lock)
        start = time.perf_counter()
        ok = bool(self.lock.acquire(*args, **kwargs))
        if not ok:
            return False
        taken = time.perf_counter()
        with _guard:
            if key not in _contention and len(_contention) >= _KEPT:
                del _contention[next(iter(_contention))]  # the oldest output's
            stats = _contention.setdefault(key, _Contention())
            stats.wait += _SMOOTHING * (taken - start - stats.wait)
            busy = stats.contended()
        threads = _threads() if busy else 1
        if self.threads and self.threads > 0:
            threads = self.threads
        try:
            old = _set_thread_config(b"GDAL_NUM_THREADS", str(threads).encode())
            _stack().append((True, old, key, taken))
        except (OSError, AttributeError):  # no libgdal to reach: compress on one thread
            _stack().append((False, None, key, taken))
        return True

    def release(self) -> None:
        stack = _stack()
        try:
            if stack:  # a stack: the locks of two outputs may nest in one thread
                changed, previous, key, taken = stack.pop()
                with _guard:
                    stats = _contention.get(key) or _Contention()
                    stats.hold += _SMOOTHING * (time.perf_counter() - taken - stats.hold)
                    stats.holds += 1
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
