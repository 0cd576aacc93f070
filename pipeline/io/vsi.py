"""Remote reads: striped block locks, and reads cut short retried.

`block_locks` lets threads of a process that need the same blocks of a remote file wait for
each other, block by block (striped locks, taken in order), while reads of disjoint blocks run
in parallel: `pipeline.io.blockcache` reads each block once with them.

Reads cut short: GDAL 3.10 retries HTTP 429/5xx answers itself (``GDAL_HTTP_MAX_RETRY``)
but not a connection reset, or a timeout, in the middle of a body: the read fails with a
short-read TIFF error (``got 16546 bytes, expected 122135``), and the partial range stays in
the process-wide /vsicurl/ cache, so every later read of those blocks fails the same way
without a request (tests/test_remote_faults.py). `retry_interrupted` retries such reads up to
``GDAL_HTTP_MAX_RETRY`` times, ``GDAL_HTTP_RETRY_DELAY`` seconds apart, after
``VSICurlPartialClearCache`` of the file (called through ctypes on the libgdal rasterio
loaded: rasterio does not wrap it).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from rasterio.errors import RasterioError

from pipeline.io.gdal_env import current_settings

T = TypeVar("T")

_SHORT_READ = re.compile(r"got (\d+) bytes, expected (\d+)")
_INTERRUPTED = ("read error", "ireadblock failed", "tiffreadencodedtile() failed")
_lock = threading.Lock()
_STRIPES = [threading.Lock() for _ in range(512)]


@contextlib.contextmanager
def block_locks(
    path: str,
    overview_level: int | None,
    rows: tuple[int, int],
    cols: tuple[int, int],
    block_shape: tuple[int, int],
) -> Iterator[None]:
    """Hold the locks of the blocks a window of ``path`` touches (see the module docstring).

    Locks are striped by a hash of (path, level, block row, block column) and taken in
    ascending order, so two readers never wait for each other in a cycle.
    """
    by, bx = block_shape
    key = f"{path}|{overview_level}|"
    stripes = sorted(
        {
            zlib.crc32(f"{key}{i},{j}".encode()) % len(_STRIPES)
            for i in range(rows[0] // by, max(rows[0], rows[1] - 1) // by + 1)
            for j in range(cols[0] // bx, max(cols[0], cols[1] - 1) // bx + 1)
        }
    )
    with contextlib.ExitStack() as stack:
        for index in stripes:
            stack.enter_context(_STRIPES[index])
        yield


def _messages(err: BaseException) -> str:
    """The messages of ``err`` and the errors chained to it, lower-cased, in one line."""
    texts: list[str] = []
    cause: BaseException | None = err
    while cause is not None and len(texts) < 10:
        texts.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    return " ".join(" ".join(texts).split()).lower()


def interrupted(err: BaseException) -> bool:
    """True when a remote read failed part-way (short read, reset, timeout in a body)."""
    low = _messages(err)
    return bool(_SHORT_READ.search(low)) or any(m in low for m in _INTERRUPTED)


def short_read(err: BaseException) -> tuple[int, int] | None:
    """``(got, expected)`` bytes of a short read, if GDAL said so."""
    m = _SHORT_READ.search(_messages(err))
    return (int(m.group(1)), int(m.group(2))) if m else None


@functools.lru_cache(maxsize=1)
def _libgdal() -> Any:
    """The libgdal rasterio loaded (its path from /proc/self/maps), or None."""
    import rasterio._base  # noqa: F401  (loads libgdal)

    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            path = next(
                (line.split()[-1] for line in maps if "libgdal" in line.rsplit("/", 1)[-1]),
                None,
            )
    except OSError:
        return None
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)  # the loaded library: dlopen of the same file
        lib.VSICurlPartialClearCache.argtypes = [ctypes.c_char_p]
        lib.VSICurlPartialClearCache.restype = None
    except (OSError, AttributeError):
        return None
    return lib


def clear_cache(gdal_path: str) -> bool:
    """Forget what GDAL cached of ``gdal_path`` (a /vsicurl/, /vsis3/... path); False when
    libgdal's function cannot be reached (the retry then reads the cache again)."""
    lib = _libgdal()
    if lib is None:
        return False
    with _lock:
        lib.VSICurlPartialClearCache(gdal_path.encode())
    return True


def retry_settings() -> tuple[int, float]:
    """``GDAL_HTTP_MAX_RETRY`` and ``GDAL_HTTP_RETRY_DELAY`` as GDAL sees them here."""
    names = ["GDAL_HTTP_MAX_RETRY", "GDAL_HTTP_RETRY_DELAY"]
    values = current_settings(names)
    try:
        retries = max(0, int(values["GDAL_HTTP_MAX_RETRY"] or 0))
    except ValueError:
        retries = 0
    try:
        delay = max(0.0, float(values["GDAL_HTTP_RETRY_DELAY"] or 30))
    except ValueError:
        delay = 30.0
    return retries, delay


def retry_interrupted(gdal_path: str, read: Callable[[int], T]) -> T:
    """``read(attempt)``, retried while a remote read is cut short (see the module docstring).

    ``read`` gets the attempt number (0 first) and must open the file again when it is not 0.
    The last error is raised as it is; other errors are raised at once.
    """
    retries, delay = retry_settings()
    attempt = 0
    while True:
        try:
            return read(attempt)
        except RasterioError as err:
            if attempt >= retries or not interrupted(err):
                raise
        clear_cache(gdal_path)
        time.sleep(delay)
        attempt += 1


__all__ = [
    "block_locks",
    "clear_cache",
    "interrupted",
    "retry_interrupted",
    "retry_settings",
    "short_read",
]
