"""One staged path from a temporary file to a published output, for every writer.

`write_staged` is the only place outputs appear: the caller writes a GeoTIFF into a unique
hidden temporary name in the destination folder (same filesystem); it is optionally turned into
a Cloud-Optimized GeoTIFF under a second temporary name (`pipeline.io.cog.finalize_cog`),
synced to disk, checked by the caller's verify hook and moved onto the destination atomically
(`publish`). Whatever fails, including Ctrl-C, every temporary file is removed and an existing
output is left untouched. `write_raster` (dask chunks through rioxarray) and batch mode's
direct tile path (one rasterio write) both go through it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import OutputError, OutputExistsError
from pipeline.io.cog import finalize_cog, staging_options
from pipeline.io.profile import creation_profile

#: Suffix of the temporary files written next to the destination; a crashed run's leftovers
#: carry it and can be removed safely.
TEMP_SUFFIX = ".pipeline-tmp"


def temp_path_for(path: str | os.PathLike[str]) -> str:
    """A unique, hidden temporary name in the destination's folder (same filesystem)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool = False) -> str:
    """Validate that ``path`` can be written; return it as an absolute path.

    Raises `OutputExistsError` when it exists and ``overwrite`` is false, and `OutputError` when
    it is a directory or its folder is missing or not writable.
    """
    p = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(p)
    if os.path.isdir(p):
        raise OutputError(f"{p}: is a directory; give a file name for the output")
    if os.path.lexists(p) and not overwrite:
        raise OutputExistsError(
            f"{p}: output exists; pass overwrite=True (--overwrite) to replace it"
        )
    if not os.path.isdir(folder):
        raise OutputError(f"{p}: output folder {folder!r} does not exist")
    probe = temp_path_for(p)
    try:
        with open(probe, "wb"):
            pass
    except OSError as err:
        raise OutputError(f"{p}: output folder is not writable ({err.strerror})") from err
    os.unlink(probe)
    return p


def fsync(path: str) -> None:
    """Flush the file at ``path`` to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: str, dst: str, *, overwrite: bool) -> None:
    """Move the finished temporary file onto ``dst`` atomically.

    Without ``overwrite`` a hard link refuses to clobber a file that appeared meanwhile
    (`OutputExistsError`); where links are not supported, the check and the rename are not
    atomic together.
    """
    if overwrite:
        os.replace(tmp, dst)
        return
    try:
        os.link(tmp, dst)  # atomic and refuses to clobber a file created meanwhile
    except FileExistsError as err:
        raise OutputExistsError(f"{dst}: output appeared while writing; left untouched") from err
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(dst):
            raise OutputExistsError(
                f"{dst}: output appeared while writing; left untouched"
            ) from err
        os.replace(tmp, dst)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def _removed_on_exit(*paths: str) -> Iterator[None]:
    """Remove ``paths`` (those that exist) when the block ends, however it ends."""
    try:
        yield
    finally:
        for leftover in dict.fromkeys(paths):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


@dataclass(frozen=True)
class CogStep:
    """How `write_staged` turns the staging GeoTIFF into a COG (`pipeline.io.cog.finalize_cog`).

    ``compress``, ``predictor`` and ``creation_options`` apply to GDAL's COG driver;
    ``reuse_freed_memory`` lifts glibc's mmap threshold meanwhile (`pipeline.malloc`), for the
    client once its cluster work is done.
    """

    dtype: Any
    height: int
    width: int
    blocksize: int
    overview_resampling: str | None = None
    compress: str | None = None
    predictor: int | None = None
    creation_options: Mapping[str, Any] | None = None
    threads: int = 1
    reuse_freed_memory: bool = False


def staging_profile(
    dtype: np.dtype[Any],
    *,
    cog: bool,
    compress: str | None = None,
    predictor: int | None = None,
    creation_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """GDAL creation options of the GeoTIFF the caller of `write_staged` writes.

    Parameters
    ----------
    dtype : numpy.dtype
        Data type of the output.
    cog : bool
        The GeoTIFF is a staging file for a COG: it gets the fast staging options of
        `pipeline.io.cog.staging_options` and the other arguments are left to the `CogStep`.
    compress, predictor, creation_options
        As `pipeline.io.profile.creation_profile`, for a plain GeoTIFF output.

    Returns
    -------
    dict
        Upper-case creation options.
    """
    if cog:
        return creation_profile(dtype, creation_options=staging_options())
    return creation_profile(
        dtype, compress=compress, predictor=predictor, creation_options=creation_options
    )


def _finish_cog(staging: str, final: str, step: CogStep, *, label: str) -> None:
    memory: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if step.reuse_freed_memory:
        from pipeline.malloc import reuse_freed_memory

        memory = reuse_freed_memory()
    with memory:
        finalize_cog(
            staging,
            final,
            dtype=step.dtype,
            height=step.height,
            width=step.width,
            blocksize=step.blocksize,
            overview_resampling=step.overview_resampling,
            compress=step.compress,
            predictor=step.predictor,
            creation_options=step.creation_options,
            threads=step.threads,
            label=label,
        )


def write_staged(
    dst: str,
    write: Callable[[str], None],
    *,
    overwrite: bool = False,
    cog: CogStep | None = None,
    verify: Callable[[str], None] | None = None,
) -> str:
    """Write an output through a temporary file and publish it atomically at ``dst``.

    Parameters
    ----------
    dst : str
        Destination file; its folder must exist. Nothing is checked before ``write`` runs
        (`check_output_path` does that for callers that want to fail early).
    write : callable
        Called with a temporary path in ``dst``'s folder; writes the complete GeoTIFF there
        (with `staging_profile` creation options).
    overwrite : bool, default False
        Replace an existing ``dst``; otherwise a file at ``dst`` (even one that appeared while
        writing) is left untouched and `OutputExistsError` is raised.
    cog : CogStep, optional
        Turn the written GeoTIFF into a strictly validated COG under a second temporary name
        (overviews, GDAL's COG driver); that file is the one verified and published.
    verify : callable, optional
        Called with the finished, synced temporary file's path just before publishing; raising
        aborts the write.

    Returns
    -------
    str
        ``dst``.

    Notes
    -----
    Every temporary file is removed on any failure, including ``KeyboardInterrupt``, and
    after success; the exception propagates unchanged.
    """
    tmp = temp_path_for(dst)
    final = temp_path_for(dst) if cog is not None else tmp
    with _removed_on_exit(tmp, final):
        write(tmp)
        if cog is not None:
            _finish_cog(tmp, final, cog, label=dst)
        fsync(final)
        if verify is not None:
            verify(final)
        publish(final, dst, overwrite=overwrite)
    return dst
