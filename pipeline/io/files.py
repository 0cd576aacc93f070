"""Raster files without dask or xarray: paths and URLs, thread-private handles, window reads.

What a task needs to read pixels of a file, importable without the lazy-array stack, so a
small job (a batch tile, a one-block `pipeline reproject`) starts fast. `pipeline.io.open`
builds its chunked arrays on these functions.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from pipeline.errors import RasterInputError
from pipeline.io.blockcache import read_blocks
from pipeline.io.cloud import apply_endpoint_settings
from pipeline.io.gdal_env import current_settings
from pipeline.io.vsi import retry_interrupted, retry_settings, short_read

_local = threading.local()
_HANDLES_PER_THREAD = 8


# URL schemes and the GDAL virtual file system that reads them. http(s) and s3 are tested
# (against local servers: tests/test_remote_http.py, tests/test_remote_s3.py); gs and az are
# mapped the same way, as GDAL names them, and read with GDAL's own credentials, untested.
_URL_PREFIXES = (
    ("http://", "/vsicurl/http://"),
    ("https://", "/vsicurl/https://"),
    ("s3://", "/vsis3/"),
    ("gs://", "/vsigs/"),
    ("az://", "/vsiaz/"),
)
_REMOTE_VSI = ("/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls", "/vsioss", "/vsiswift")


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for URLs GDAL reads over the network and their GDAL paths (``/vsicurl/...``)."""
    p = os.fspath(path)
    # /vsizip//vsicurl/https://... is remote too
    return p.startswith(tuple(prefix for prefix, _ in _URL_PREFIXES)) or any(
        f"{vsi}/" in p for vsi in _REMOTE_VSI
    )


def gdal_path(path: str | os.PathLike[str]) -> str:
    """The path GDAL opens: ``https://h/a.tif`` -> ``/vsicurl/https://h/a.tif``,
    ``s3://b/k`` -> ``/vsis3/b/k`` (also ``gs://``, ``az://``); anything else unchanged."""
    p = os.fspath(path)
    for prefix, vsi in _URL_PREFIXES:
        if p.startswith(prefix):
            return vsi + p[len(prefix) :]
    return p


def display_path(path: str) -> str:
    """The URL a user gave for a GDAL path (``/vsis3/b/k`` -> ``s3://b/k``), for messages."""
    for prefix, vsi in _URL_PREFIXES:
        if path.startswith(vsi):
            return prefix + path[len(vsi) :]
    return path


def remote_cause(err: BaseException) -> str:
    """What went wrong reading a remote file, in words, from GDAL's /vsicurl/ or /vsis3/ error.

    Never repeats credentials: GDAL's messages name variables, not their values. rasterio's
    "Read failed. See previous exception" is read with the GDAL error chained to it.
    """
    texts, seen = [], set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if str(cause) not in texts:
            texts.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    msg = " ".join(" ".join(reversed(texts)).split())
    low = msg.lower()
    if "specified bucket does not exist" in low or "nosuchbucket" in low:
        return "not found (no such bucket)"
    if "specified key does not exist" in low or "nosuchkey" in low:
        return "not found (no such key)"
    if "response code: 404" in low:
        return "not found (HTTP 404)"
    if (
        "signature we calculated does not match" in low
        or "access key id you provided does not exist" in low
        or "access denied" in low
        or "accessdenied" in low
        or "invalidaccesskeyid" in low
    ):
        return "access denied: check credentials"
    if "response code: 403" in low or "response code: 401" in low:
        code = "401" if "401" in low else "403"
        return f"access denied (HTTP {code}): check credentials"
    if "configuration options not defined" in low and "aws_" in low:
        return (
            "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
            "or AWS_NO_SIGN_REQUEST=YES for a public bucket"
        )
    if "does not exist in the file system" in low:
        # GDAL fetches nothing whose name lacks an extension of CPL_VSIL_CURL_ALLOWED_EXTENSIONS
        name = "CPL_VSIL_CURL_ALLOWED_EXTENSIONS"
        allowed = current_settings([name])[name]
        quoted = re.search(r"'([^']*)'", msg)
        path = (quoted.group(1) if quoted else "").lower()
        suffixes = tuple(s.strip().lower() for s in (allowed or "").split(",") if s.strip())
        if allowed and not path.endswith(suffixes):
            return f"not found, or not a name GDAL fetches ({name}={allowed})"
        return "not found"
    got = short_read(err)
    if got is not None:
        return f"connection lost during the read (got {got[0]} of {got[1]} bytes)"
    if "could not connect" in low or "failed to connect" in low or "connection refused" in low:
        return f"connection refused: is the server up? ({msg})"
    if "timed out" in low or "timeout" in low:
        return f"timed out ({msg})"
    if "not recognized as" in low and "supported" in low:
        return "not a raster GDAL can read"
    match = re.search(r"response code: (\d+)", low)
    if match:
        return f"HTTP error {match.group(1)}"
    return f"unreadable ({msg})"


def file_identity(path: str) -> tuple[Any, ...]:
    """What tells one version of a file from another: path, device, inode, size and mtime of a
    local file; the GDAL path of a remote one."""
    if is_remote(path):
        # No stat over the network: the URL names the object. GDAL's /vsicurl/ caches what it
        # has read for the life of the process anyway, so an object replaced in place is not
        # seen by this process either way.
        return ("remote", path)
    st = os.stat(path)
    return (os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def check_input_file(path: str | os.PathLike[str]) -> str:
    """Return ``path`` as a string, or raise a one-line `RasterInputError` naming what is wrong.

    A URL (``http(s)://``, ``s3://``, ``gs://``, ``az://``) or GDAL network path
    (``/vsicurl/...``) is returned as the GDAL path `gdal_path` gives, after GDAL opened it
    once (its header then sits in GDAL's cache): not found, access denied, connection refused
    and not a raster are told apart.
    """
    p = os.fspath(path)
    if is_remote(p):
        gp = gdal_path(p)
        apply_endpoint_settings()
        try:
            with rasterio.open(gp):
                pass
        except RasterioError as err:
            raise RasterInputError(f"{p}: {remote_cause(err)}") from err
        return gp
    if not os.path.exists(p):
        raise RasterInputError(f"{p}: no such file")
    if os.path.isdir(p):
        raise RasterInputError(f"{p}: is a directory, not a raster file")
    if os.path.getsize(p) == 0:
        raise RasterInputError(f"{p}: empty file (0 bytes), not a raster")
    if not os.access(p, os.R_OK):
        raise RasterInputError(f"{p}: not readable (permission denied)")
    return p


@dataclass(frozen=True)
class FileSource:
    """What `open_raster` read: recorded as ``da.encoding["pipeline_source"]``.

    Attributes
    ----------
    path : str
        Absolute path of the file, or the GDAL path of a remote one (``/vsicurl/https://...``).
    bands : tuple of int
        1-based band indexes read.
    overview_level : int or None
        Overview read (0 is the first, 2x overview); None for full resolution.
    layer : str
        Name of the dask layer `open_raster` built (``pipeline-open-<token>``).
    shape : (int, int, int)
        ``(band, y, x)`` shape of that layer.
    dtype : str
        Data type read (``numpy.dtype.str``).
    identity : tuple
        Path, device, inode, size and modification time of the file when it was opened;
        ``("remote", path)`` for a remote file.
    """

    path: str
    bands: tuple[int, ...]
    overview_level: int | None
    layer: str
    shape: tuple[int, int, int]
    dtype: str
    identity: tuple[Any, ...]


def overview_shapes(path: str | os.PathLike[str]) -> list[tuple[int, int]]:
    """``(height, width)`` of each overview of ``path``'s first band, finest first.

    Empty for files without overviews, or that GDAL cannot open.
    """
    p = gdal_path(path)
    try:
        with rasterio.open(p) as ds:
            count = len(ds.overviews(1))
        shapes = []
        for level in range(count):
            with rasterio.open(p, overview_level=level) as ovr:
                shapes.append((ovr.height, ovr.width))
    except RasterioError:
        return []
    return shapes


def _dataset(
    path: str, identity: tuple[Any, ...], overview_level: int | None = None
) -> rasterio.DatasetReader:
    """A rasterio dataset private to the calling thread (GDAL handles are not thread-safe).

    Each thread keeps the few most recently used files open (an LRU of
    ``_HANDLES_PER_THREAD``), keyed by file identity and overview level so a rewritten
    file is reopened.
    """
    cache: OrderedDict[tuple[Any, ...], rasterio.DatasetReader] | None = getattr(
        _local, "datasets", None
    )
    if cache is None:
        cache = _local.datasets = OrderedDict()
    key = (*identity, overview_level)
    ds = cache.get(key)
    if ds is None or ds.closed:
        if is_remote(path):
            apply_endpoint_settings()  # on a worker too, from its own AWS_ENDPOINT_URL
        if overview_level is None:
            ds = cache[key] = rasterio.open(path)
        else:
            ds = cache[key] = rasterio.open(path, overview_level=overview_level)
    cache.move_to_end(key)
    while len(cache) > _HANDLES_PER_THREAD:
        cache.popitem(last=False)[1].close()
    return ds


def _forget(identity: tuple[Any, ...], overview_level: int | None) -> None:
    """Close this thread's handle of a file (the next read opens it again)."""
    cache = getattr(_local, "datasets", None)
    ds = cache.pop((*identity, overview_level), None) if cache is not None else None
    if ds is not None:
        ds.close()


def retried(err: BaseException) -> str:
    """``", after 3 retries (GDAL_HTTP_MAX_RETRY)"`` for a read cut short; else empty."""
    retries = retry_settings()[0]
    if short_read(err) is None or not retries:
        return ""
    return f", after {retries} retries (GDAL_HTTP_MAX_RETRY)"


def read_window(
    path: str,
    identity: tuple[Any, ...],
    indexes: list[int],
    dtype: str,
    overview_level: int | None,
    rows: tuple[int, int],
    cols: tuple[int, int],
) -> np.ndarray:
    """Read ``indexes`` over rows ``rows`` and columns ``cols``; errors name file and window."""
    (r0, r1), (c0, c1) = rows, cols
    window = Window(c0, r0, c1 - c0, r1 - r0)
    remote = is_remote(path)

    def read(attempt: int) -> np.ndarray:
        if attempt:  # a retry after a read cut short: a new handle, GDAL's cache cleared
            _forget(identity, overview_level)
        ds = _dataset(path, identity, overview_level)
        if not remote:
            data: np.ndarray = ds.read(indexes, window=window, out_dtype=dtype)
            return data
        # through the per-process block cache: no block fetched by two threads
        return read_blocks(ds, (*identity, overview_level), indexes, dtype, rows, cols)

    try:
        out = retry_interrupted(path, read) if remote else read(0)
    except RasterioError as err:
        where = "" if overview_level is None else f" of overview {overview_level}"
        if remote:
            raise RasterInputError(
                f"{display_path(path)}: cannot read rows {r0}:{r1}, columns {c0}:{c1}{where}: "
                f"{remote_cause(err)}{retried(err)}"
            ) from err
        raise RasterInputError(
            f"{path}: corrupt or unreadable data in rows {r0}:{r1}, columns {c0}:{c1}"
            f"{where} ({err})"
        ) from err
    return out


def read_source_window(
    source: FileSource, rows: tuple[int, int], cols: tuple[int, int]
) -> np.ndarray:
    """Read all of ``source``'s bands over a window, as the `open_raster` array holds them.

    Parameters
    ----------
    source : FileSource
        What `file_source` returned for an `open_raster` array.
    rows, cols : (int, int)
        Half-open pixel ranges of the full array (or of the overview ``source`` reads).

    Returns
    -------
    numpy.ndarray
        ``(band, rows, cols)`` values equal to ``da[:, r0:r1, c0:c1]`` of that array, read
        through the calling thread's own dataset handle.

    Raises
    ------
    RasterInputError
        The window cannot be read (corrupt data); the message names file and window.
    """
    return read_window(
        source.path,
        source.identity,
        list(source.bands),
        source.dtype,
        source.overview_level,
        rows,
        cols,
    )


__all__ = [
    "FileSource",
    "check_input_file",
    "display_path",
    "file_identity",
    "gdal_path",
    "is_remote",
    "overview_shapes",
    "read_source_window",
    "read_window",
    "remote_cause",
    "retried",
]
