"""Checks made before work is submitted to a distributed cluster: versions and shared folders.

Cluster code: it lives beside `pipeline.cluster`; `pipeline.io.write` calls `ensure_cluster_ready`
when a distributed client runs the write. Imports without distributed.
"""

from __future__ import annotations

import os
import uuid
import weakref
from typing import Any

from pipeline.errors import ClusterError

#: Packages whose versions must match between the client and every worker.
_CHECKED_PACKAGES = ("raster-pipeline", "rasterio", "rioxarray", "xarray", "numba", "pyproj")

Client = Any  # distributed.Client; kept untyped so this module imports without distributed


def _package_versions() -> dict[str, str | None]:
    """Versions of the packages whose mismatch would break or skew results (run on workers)."""
    from importlib.metadata import PackageNotFoundError, version

    import rasterio

    out: dict[str, str | None] = {"GDAL": rasterio.__gdal_version__}
    for name in _CHECKED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def check_versions(client: Client) -> None:
    """Raise `ClusterError` when a worker's packages differ from the client's.

    Checks distributed's own list (python, dask, distributed, numpy, ...) and ours
    (raster-pipeline, rasterio and its GDAL, rioxarray, xarray, numba, pyproj).
    """
    try:
        client.get_versions(check=True)
    except ValueError as err:
        raise ClusterError(" ".join(f"version mismatch: {err}".split())) from err
    mine = _package_versions()
    bad = []
    for worker, theirs in client.run(_package_versions).items():
        diff = {k: (mine[k], theirs.get(k)) for k in mine if theirs.get(k) != mine[k]}
        if diff:
            bad.append(
                f"{worker}: " + ", ".join(f"{k} {a} here vs {b}" for k, (a, b) in diff.items())
            )
    if bad:
        raise ClusterError("package versions differ between client and workers: " + "; ".join(bad))


def check_folder_visible(client: Client, folder: str) -> None:
    """Raise `ClusterError` unless every worker sees ``folder`` as the client does.

    A probe file is created in ``folder`` here and looked for on every worker, so a folder of
    the same name on a worker's local disk does not pass for a shared filesystem.
    """
    probe = os.path.join(folder, f".pipeline-probe-{uuid.uuid4().hex}")
    with open(probe, "wb"):
        pass
    try:
        seen = client.run(os.path.exists, probe)
    finally:
        os.unlink(probe)
    blind = sorted(w for w, ok in seen.items() if not ok)
    if blind:
        raise ClusterError(
            f"{folder}: not visible from worker(s) {', '.join(blind)}; the output folder must be "
            "on a filesystem shared by this machine and every worker"
        )


_checked: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def ensure_cluster_ready(client: Client, folder: str) -> None:
    """Version and shared-folder checks, once per client and folder, before work is submitted."""
    done = _checked.setdefault(client, set())
    if not done:
        check_versions(client)
        done.add("")
    if folder not in done:
        check_folder_visible(client, folder)
        done.add(folder)
